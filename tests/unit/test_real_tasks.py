"""Tasks for real models: SciQ / SciKnowEval from local files in the hub's schema, probes for any tokenizer,
and the Qwen2.5-3B config. No network: the files are written here and read by the same ``load_dataset`` call
the hub path uses."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import yaml

from circuitdrift.errors import InputError
from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.tasks import probes, science
from circuitdrift.tasks.base import Example, Task, encode
from circuitdrift.tasks.registry import builtin_tasks, resolve_task
from circuitdrift.tasks.splits import SPLITS, split_of

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "qwen2.5-3b-sciknoweval.yaml"
SUBSTANCES = ["ethanol", "methane", "benzene", "acetone", "glucose", "ammonia", "propane", "toluene", "phenol",
              "urea", "butane", "ethylene", "nitrogen", "oxygen", "sulfur", "carbon", "sodium", "calcium"]


def chem_rows() -> list[dict]:
    """SciKnowEval rows: 36 Chemistry L3 mcq-4-choices items, plus rows the filter must drop."""
    rows = []
    for i in range(36):
        substance = SUBSTANCES[i % len(SUBSTANCES)]
        values = [str(10 + 3 * i + k) for k in range(4)]
        rows.append({
            "question": f"What is the molar weight of {substance} sample {i} ?",
            "choices": {"text": values, "label": list("ABCD")},
            "answerKey": "ABCD"[i % 4],
            "type": "mcq-4-choices",
            "domain": "Chemistry",
            "details": {"level": "L3", "task": "molar_weight_calculation", "subtask": "molar_weight"},
        })
    drops = [("Biology", "L3", "mcq-4-choices"), ("Chemistry", "L2", "mcq-4-choices"),
             ("Chemistry", "L3", "true_or_false")]
    for j, (domain, level, kind) in enumerate(drops):
        rows.append({"question": f"Is {SUBSTANCES[j]} dropped {j} ?", "choices": {"text": ["1", "2", "3", "4"],
                     "label": list("ABCD")}, "answerKey": "A", "type": kind, "domain": domain,
                     "details": {"level": level, "task": "t", "subtask": "s"}})
    return rows


def sciq_rows(split: str, count: int = 8) -> list[dict]:
    return [{"question": f"Which substance is {split} item {i} ?", "distractor1": SUBSTANCES[(i + 1) % 18],
             "distractor2": SUBSTANCES[(i + 2) % 18], "distractor3": SUBSTANCES[(i + 3) % 18],
             "correct_answer": SUBSTANCES[i % 18], "support": "not shown"} for i in range(count)]


def words_of(*texts: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", " ".join(texts))


def vocabulary() -> list[str]:
    texts = [json.dumps(r) for r in chem_rows()] + [json.dumps(sciq_rows(s)) for s in SPLITS]
    texts += [science.INSTRUCTION, " ".join(science.LETTERS), *probes.IOI_TEMPLATES, *probes.NAMES, *probes.PLACES,
              *probes.OBJECTS, *probes.GREATER_TEMPLATES, *probes.GREATER_NOUNS, probes.FACT_TEMPLATE,
              probes.FACT_CHAT_QUESTION,
              probes.INDUCTION_PREFIX, *probes.INDUCTION_WORDS, *(c for pair in probes.CAPITALS for c in pair)]
    numbers = [f"{v:02d}" for v in range(100)] + [f"17{v:02d}" for v in range(100)] + ["17"]
    return list(dict.fromkeys([*words_of(*texts), *numbers]))


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(vocabulary())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Hub-shaped local copies: SciQ as split-named Parquet files (beside metadata and a hidden cache),
    SciKnowEval as one JSON Lines file."""
    from datasets import Dataset

    root = tmp_path_factory.mktemp("data")
    for split in SPLITS:
        Dataset.from_list(sciq_rows(split)).to_parquet(root / "sciq" / "data" / f"{split}-00000-of-00001.parquet")
    (root / "sciq" / "dataset_infos.json").write_text("{}")  # hub metadata and hf download's cache: not data
    (root / "sciq" / ".cache").mkdir()
    (root / "sciq" / ".cache" / "train.json").write_text("not json")
    chem = root / "sciknoweval" / "data" / "Chemistry" / "sciknoweval_chemistry_test.jsonl"
    chem.parent.mkdir(parents=True)
    chem.write_text("\n".join(json.dumps(r) for r in chem_rows()) + "\n")
    return root


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Datasets' cache in a temporary folder; no source from the environment unless a test sets one."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.delenv("CIRCUITDRIFT_SCIQ", raising=False)
    monkeypatch.delenv("CIRCUITDRIFT_SCIKNOWEVAL", raising=False)


# ---- science tasks ------------------------------------------------------------------------------------------


def option_texts(prompt: str) -> dict[str, str]:
    return dict(re.findall(r"^([ABCD])\. (.*)$", prompt, flags=re.M))


def test_sciknoweval_pool_is_filtered_and_split_disjointly_by_question(data, tokenizer):
    spec = f"sciknoweval-chem-l3:{data / 'sciknoweval'}"
    tasks = {s: resolve_task(spec, split=s, tokenizer=tokenizer) for s in SPLITS}
    stems = {s: {t.split("\n")[0] for t in task.chat_prompts} for s, task in tasks.items()}
    for task in tasks.values():  # the loader's own counts: this split's questions of all those kept
        assert f"{len(task)} of the 36 questions kept, split by question hash 80/10/10" in task.description
    expected = {r["question"] for r in chem_rows()[:36]}
    assert set().union(*stems.values()) == expected  # Biology, L2 and true_or_false rows are gone
    assert sum(len(v) for v in stems.values()) == len(expected)  # disjoint
    for split, questions in stems.items():
        assert all(split_of(q) == split for q in questions)
    assert all(stems.values()), "36 questions should reach every split of an 80/10/10 hash"


def test_sciq_keeps_the_split_files_from_the_environment_variable(data, tokenizer, monkeypatch):
    monkeypatch.setenv("CIRCUITDRIFT_SCIQ", str(data / "sciq"))
    for split in SPLITS:
        task = resolve_task("sciq", split=split, tokenizer=tokenizer)
        assert {t.split("\n")[0] for t in task.chat_prompts} == {r["question"] for r in sciq_rows(split)}
        assert "as given" in task.description


def test_split_named_folders_count_as_split_names(tmp_path, tokenizer):
    for split in SPLITS:
        (tmp_path / "sciq-test-copy" / split).mkdir(parents=True)
        rows = "\n".join(json.dumps(r) for r in sciq_rows(split, 3))
        (tmp_path / "sciq-test-copy" / split / "part-0.jsonl").write_text(rows + "\n")
    task = resolve_task(f"sciq:{tmp_path / 'sciq-test-copy'}", split="validation", tokenizer=tokenizer)
    assert {t.split("\n")[0] for t in task.chat_prompts} == {r["question"] for r in sciq_rows("validation", 3)}


def test_mcq_examples_letters_template_lengths_and_grader(data, tokenizer):
    task = resolve_task(f"sciq:{data / 'sciq'}", split="train", n=8, tokenizer=tokenizer)
    assert task.templated and len(task.chat_prompts) == len(task) == 8
    rows = {r["question"]: r for r in sciq_rows("train")}
    for ex, turn in zip(task.examples, task.chat_prompts, strict=True):
        assert ex.clean == tokenizer.apply_chat_template([{"role": "user", "content": turn}], tokenize=False,
                                                         add_generation_prompt=True)
        assert ex.clean.startswith("<|im_start|>system\n") and ex.clean.endswith("<|im_start|>assistant\n")
        row = rows[turn.split("\n")[0]]
        clean_opts, corrupt_opts = option_texts(ex.clean), option_texts(ex.corrupt)
        assert clean_opts[ex.answer] == row["correct_answer"] == corrupt_opts[ex.counter_answer]
        assert ex.answer != ex.counter_answer and sorted(clean_opts.values()) == sorted(corrupt_opts.values())
    assert len({ex.answer for ex in task.examples}) > 1  # the raw correct answer is always first; shuffled here
    for enc in encode(task, tokenizer):
        assert len(enc.clean_ids) == len(enc.corrupt_ids) and len(enc.answer_ids) == 1
    completions = ["B", " (C) because", "The answer is D.", "A molecule", "none", ""]
    assert [task.parse(c) for c in completions] == ["B", "C", "D", "A", None, None]
    answers = [task.examples[i % len(task)].answer for i in range(len(completions))]
    assert task.reward(prompts=[None] * 6, completions=completions, answer=answers) == [
        task.grade(c, a) for c, a in zip(completions, answers, strict=True)]
    chat = [[{"role": "assistant", "content": ex.answer}] for ex in task.examples]
    assert task.reward([None] * 8, chat, [ex.answer for ex in task.examples]) == [1.0] * 8
    assert type(task.subset(3)) is type(task) and task.subset(3).chat_prompts == task.chat_prompts[:3]


def test_option_order_is_seeded(data, tokenizer):
    spec = f"sciq:{data / 'sciq'}"
    a, b = (resolve_task(spec, split="test", tokenizer=tokenizer, seed=s) for s in (0, 0))
    c = resolve_task(spec, split="test", tokenizer=tokenizer, seed=1)
    assert a.examples == b.examples
    assert sorted(e.clean for e in a.examples) != sorted(e.clean for e in c.examples)


def test_counterfactual_swaps_then_repairs_then_gives_up():
    q = science.Question("stem", ("w", "xx", "yyy", "zzzz"), 0)
    swap, repaired = science.counterfactual(q, random.Random(0), lambda c: len(c.stem))
    assert not repaired and swap.correct != 0 and swap.options[swap.correct] == "w"
    assert sorted(swap.options) == sorted(q.options)
    assert sum(a != b for a, b in zip(q.options, swap.options, strict=True)) == 2
    # a "length" that only 3-cycles keep (fixed slots: 4 -> 1, swap 2 -> 2, 3-cycle 1 -> 1, 4-cycle 0 -> 0)
    def weight(c):
        return sum(a == b for a, b in zip(q.options, c.options, strict=True)) % 3

    moved, repaired = science.counterfactual(q, random.Random(0), weight)
    assert repaired and moved.correct != 0 and weight(moved) == weight(q)
    assert sum(a == b for a, b in zip(q.options, moved.options, strict=True)) == 1
    with pytest.raises(LookupError):
        science.counterfactual(q, random.Random(0), lambda c: c.correct)


def test_duplicate_options_are_skipped_and_counted(tmp_path, tokenizer):
    rows = sciq_rows("train", 30)  # enough rows that the 80/10/10 hash reaches every split
    rows[0]["distractor1"] = rows[0]["correct_answer"]
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(rows))  # a JSON array, as SciKnowEval's README shows its files
    tasks = [resolve_task(f"sciq:{path}", split=s, tokenizer=tokenizer) for s in SPLITS]
    assert sum(len(t) for t in tasks) == len(rows) - 1  # a single file is one pool, split by hash
    assert sum("1 skipped" in t.description for t in tasks) == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(answerKey="E"), r"row 0: answerKey 'E' is not one of the labels"),
        (lambda r: r["choices"].update(text=["1", "2", "3"]), r"row 0: an mcq-4-choices item has 3 choices"),
        (lambda r: r.pop("question"), r"row 0: missing key 'question'"),
    ],
)
def test_bad_rows_name_dataset_row_and_key(tmp_path, tokenizer, mutate, message):
    rows = chem_rows()
    mutate(rows[0])
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(InputError, match=f"dataset '{re.escape(str(path))}': {message}"):
        resolve_task(f"sciknoweval-chem-l3:{path}", tokenizer=tokenizer)


def test_science_input_errors(data, tmp_path, tokenizer):
    with pytest.raises(InputError, match=r"dataset 'allenai/sciq': cannot load it from the Hugging Face Hub.*"
                                         r"pass local files: 'sciq:/path/to/files' or CIRCUITDRIFT_SCIQ="):
        resolve_task("sciq", tokenizer=tokenizer)  # tests run with HF_DATASETS_OFFLINE=1
    with pytest.raises(InputError, match=r"'/no/such/dir': no such file or folder"):
        resolve_task("sciq:/no/such/dir", tokenizer=tokenizer)
    with pytest.raises(InputError, match="pass the model's tokenizer"):
        resolve_task(f"sciq:{data / 'sciq'}")
    with pytest.raises(InputError, match=r"has 8 usable questions, fewer than n=9"):
        resolve_task(f"sciq:{data / 'sciq'}", n=9, tokenizer=tokenizer)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not data\n")
    with pytest.raises(InputError, match="no data files"):
        resolve_task(f"sciq:{tmp_path / 'empty'}", tokenizer=tokenizer)
    only_train = tmp_path / "only-train"
    only_train.mkdir()
    (only_train / "train.jsonl").write_text(json.dumps(sciq_rows("train")[0]) + "\n")
    with pytest.raises(InputError, match="no data file for split 'test'"):
        resolve_task(f"sciq:{only_train}", tokenizer=tokenizer)
    with pytest.raises(InputError, match="takes no ':' argument"):
        resolve_task("hf-ioi:/data", tokenizer=tokenizer)


# ---- probes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hf-ioi", "hf-greater-than", "hf-factual", "hf-induction"])
def test_probes_for_a_tokenizer_have_equal_lengths_and_one_token_answers(tokenizer, name):
    task = resolve_task(name, split="test", n=40, tokenizer=tokenizer)
    assert len(task) == 40 and not task.templated and "dropped" in task.description
    for ex, enc in zip(task.examples, encode(task, tokenizer), strict=True):
        assert len(enc.clean_ids) == len(enc.corrupt_ids)
        assert len(enc.answer_ids) == 1 and enc.counter_ids is not None and len(enc.counter_ids) == 1
        assert ex.clean != ex.corrupt and ex.answer != ex.counter_answer
    assert resolve_task(name, split="test", n=40, tokenizer=tokenizer).examples == task.examples


def test_probe_semantics(tokenizer):
    for ex in resolve_task("hf-ioi", n=20, tokenizer=tokenizer).examples:
        names = [w for w in re.findall(r"[A-Z][a-z]+", ex.clean) if w in probes.NAMES]
        assert names.count(ex.answer.strip()) == 1 and names.count(ex.counter_answer.strip()) == 2
        assert ex.counter_answer.strip() not in re.split(r"[,.]", ex.corrupt)[-1]  # ABC: S replaced by C
    for ex in resolve_task("hf-greater-than", n=20, tokenizer=tokenizer).examples:
        start = int(re.search(r"year 17(\d\d) ", ex.clean).group(1))
        assert int(ex.counter_answer) < start < int(ex.answer) and "year 1701 " in ex.corrupt
    capitals = dict(probes.CAPITALS)
    for ex in resolve_task("hf-factual", n=80, tokenizer=tokenizer).examples:
        assert capitals[ex.clean.split()[-2]] == ex.answer.strip()
        assert capitals[ex.corrupt.split()[-2]] == ex.counter_answer.strip()
    for ex in resolve_task("hf-induction", n=20, tokenizer=tokenizer).examples:
        words = ex.clean.split()[1:]
        k = next(i for i in range(1, len(words)) if words[i] == words[0])
        assert ex.answer.strip() == words[len(words) - k]


def test_chat_factual_probe_asks_the_capitals_in_the_chat_template(tokenizer):
    task = resolve_task("hf-factual-chat", split="test", n=30, tokenizer=tokenizer)
    capitals = dict(probes.CAPITALS)
    assert task.templated and len(task) == 30
    for ex, enc in zip(task.examples, encode(task, tokenizer), strict=True):
        assert ex.clean.startswith("<|im_start|>") and ex.clean.endswith("<|im_start|>assistant\n")
        country = re.search(r"capital of (\w+)\?", ex.clean).group(1)
        other = re.search(r"capital of (\w+)\?", ex.corrupt).group(1)
        assert ex.answer == capitals[country] and ex.counter_answer == capitals[other]  # no leading space
        assert len(enc.clean_ids) == len(enc.corrupt_ids) and len(enc.answer_ids) == 1
    plain = build_word_tokenizer(vocabulary())
    plain.chat_template = None
    with pytest.raises(InputError, match="hf-factual-chat.*no chat template"):
        resolve_task("hf-factual-chat", tokenizer=plain)


def test_greater_than_accepts_any_later_year(tokenizer):
    task = resolve_task("hf-greater-than", n=30, tokenizer=tokenizer)
    for ex in task.examples:
        start = int(re.search(r"year 17(\d\d) ", ex.clean).group(1))
        assert set(ex.answers) == {f"{y:02d}" for y in range(start + 1, 100)} and ex.answer in ex.answers
        assert set(ex.wrong_answers) == {f"{y:02d}" for y in range(start + 1)}
        farther = f"{min(start + 30, 99):02d}"  # a later year beyond the gold answer's nine: right all the same
        assert task.grade_example(f"{farther} and", ex) == 1.0
        assert task.grade_example(f"{start:02d}", ex) == 0.0 and task.grade_example(f"{start - 1:02d}", ex) == 0.0


@pytest.mark.parametrize("name", ["hf-ioi", "hf-greater-than", "hf-factual", "hf-induction"])
def test_every_probe_reaches_its_own_default_size(tokenizer, bpe_tokenizer, name):
    for tok in (tokenizer, bpe_tokenizer):
        task = resolve_task(name, split="test", n=None, tokenizer=tok)
        assert len(task) >= (len(probes.CAPITALS) // 2 if name == "hf-factual" else probes.DEFAULT_N), (name, len(task))


def test_too_many_examples_names_the_real_cause(tokenizer):
    with pytest.raises(InputError, match=r"hf-greater-than': only \d+ of n=5000 examples for split 'test': the probe "
                                         r"has \d+ distinct prompts in this split"):
        resolve_task("hf-greater-than", n=5000, tokenizer=tokenizer)


def test_generated_probe_splits_are_disjoint(tokenizer):
    for name in ("hf-ioi", "hf-greater-than", "hf-induction"):
        train = {e.clean for e in resolve_task(name, split="train", n=60, tokenizer=tokenizer).examples}
        test = {e.clean for e in resolve_task(name, split="test", n=40, tokenizer=tokenizer).examples}
        assert not train & test


def test_probe_filters_and_refusals():
    few_names = build_word_tokenizer(words_of(*probes.IOI_TEMPLATES, *probes.PLACES, *probes.OBJECTS, "Mary John"))
    with pytest.raises(InputError, match=r"only 2 of the built-in names are one token.*needs at least 3"):
        resolve_task("hf-ioi", tokenizer=few_names)
    digits = build_word_tokenizer([*words_of(probes.GREATER_TEMPLATE, *probes.GREATER_NOUNS), *"0123456789"])
    with pytest.raises(InputError, match=r"single tokens for only 1 of the 100 two-digit numbers.*leave this probe"):
        # digits are words of this vocabulary, but "32" is one unknown word, not two digit tokens
        resolve_task("hf-greater-than", tokenizer=digits)
    some = probes.CAPITALS[:5]
    partial = build_word_tokenizer(words_of(probes.FACT_TEMPLATE, *(c for pair in some for c in pair)))
    task = resolve_task("hf-factual", tokenizer=partial)
    assert len(task) == 5 and f"5/{len(probes.CAPITALS)} capitals kept" in task.description
    with pytest.raises(InputError, match=r"hf-factual': only 20 of n=21 examples"):
        resolve_task("hf-factual", n=21, tokenizer=partial)  # 5 facts x 4 counterparts
    with pytest.raises(InputError, match="pass the model's tokenizer"):
        resolve_task("hf-induction")


def test_pair_checker_drops_unequal_lengths(tokenizer):
    checker = probes.PairChecker(tokenizer)
    assert checker.accept(Example("The capital of France is", "The capital of Spain is", " Paris", " Madrid"))
    assert not checker.accept(Example("The capital of France is", "The capital of is", " Paris"))
    assert not checker.accept(Example("The capital of France is", "The capital of Spain is", " Zork"))
    assert checker.dropped == 2


def test_real_model_tasks_are_registered_beside_the_organism():
    names = builtin_tasks()
    for name in ("hf-ioi", "hf-greater-than", "hf-factual", "hf-induction", "sciq", "sciknoweval-chem-l3",
                 "ioi", "science-qa"):
        assert name in names


# ---- the paper's config -------------------------------------------------------------------------------------


def test_qwen_config_is_the_papers_recipe():
    from circuitdrift.pipeline.config import load_config

    config, _ = load_config(CONFIG)
    assert config.base_model == "Qwen/Qwen2.5-3B-Instruct" and config.dtype == "bfloat16"
    assert config.target_task == "sciknoweval-chem-l3" and set(config.methods) == {"sft", "rl"}
    train, rl = config.train, config.train.rl
    assert (rl.num_generations, train.prompts_per_step, rl.loss_type, rl.beta) == (64, 8, "dr_grpo", 0.0)
    assert (train.lr_schedule, train.warmup_steps, train.bf16, train.weight_decay) == (
        "constant_with_warmup", 50, True, 0.0)
    assert 1e-5 <= train.learning_rate <= 5e-5
    a, e = config.analysis, config.eval
    assert (a.top_k, a.n_examples, a.tau) == (20, 50, 0.1)
    assert (e.kl_samples, e.kl_temperature, e.kl_top_p, e.kl_max_new_tokens) == (200, 0.6, 1.0, 128)


def test_qwen_config_resolves_every_task_on_a_local_tiny_model(data, tokenizer, tmp_path):
    from circuitdrift.models.load import load_model
    from circuitdrift.models.tiny import tiny_model
    from circuitdrift.pipeline.config import parse_config

    folder = tmp_path / "tiny-qwen2"
    tiny_model("qwen2", vocab_size=len(tokenizer), n_layers=1, hidden=16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    raw = yaml.safe_load(CONFIG.read_text())
    raw.update(base_model=str(folder), target_task=f"sciknoweval-chem-l3:{data / 'sciknoweval'}", device="cpu",
               dtype="float32")
    config = parse_config(raw, "local copy")
    _, loaded = load_model(config.base_model, dtype=config.dtype, device=config.device)
    target = resolve_task(config.target_task, split=config.train.train_split, n=config.train.train_examples,
                          tokenizer=loaded)
    assert isinstance(target, Task) and target.templated and len(target) == len(target.chat_prompts) > 10
    assert target.examples[0].clean.startswith("<|im_start|>system")
    for spec in config.probes:
        for n in (config.analysis.n_examples, config.eval.probe_n):
            probe = resolve_task(spec, split=config.eval.split, n=n, tokenizer=loaded)
            assert len(probe) == n and len(encode(probe, loaded)) == n


# ---- a byte-level BPE tokenizer with Qwen2's pre-tokenizer (digits one by one), trained here ---------------

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")


@pytest.fixture(scope="module")
def bpe_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from circuitdrift.models.wordlevel import CHAT_TEMPLATE

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=4000, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(vocabulary())] * 20 + ["\n".join(f"{x}. {w}" for x, w in zip("ABCD", SUBSTANCES, strict=False))]
    core.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def test_tasks_on_a_digit_splitting_byte_level_tokenizer(bpe_tokenizer, data):
    assert bpe_tokenizer.tokenize("1732") == ["1", "7", "3", "2"]
    years = resolve_task("hf-greater-than", n=20, tokenizer=bpe_tokenizer)  # two-digit answers as two tokens
    assert "two digit tokens" in years.description
    for ex, enc in zip(years.examples, encode(years, bpe_tokenizer), strict=True):
        assert ex.counter_answer is None and len(enc.answer_ids) == 2
        assert len(enc.clean_ids) == len(enc.corrupt_ids)
        assert int(ex.answer) > int(ex.clean.split("year 17")[1][:2])  # a later year than the start
        assert years.grade(ex.answer, ex.answer) == 1.0
    for name in ("hf-ioi", "hf-factual", "hf-induction"):
        task = resolve_task(name, n=20, tokenizer=bpe_tokenizer)
        assert all(len(e.clean_ids) == len(e.corrupt_ids) for e in encode(task, bpe_tokenizer))
        assert all(len(bpe_tokenizer.tokenize(ex.answer)) == 1 for ex in task.examples)
    target = resolve_task(f"sciq:{data / 'sciq'}", split="validation", tokenizer=bpe_tokenizer)
    assert len(target) == 8 and all(len(e.answer_ids) == 1 for e in encode(target, bpe_tokenizer))


# ---- a default n is a cap; an explicit one is a demand ---------------------------------------------------------


def test_a_default_n_takes_what_the_task_has_and_an_explicit_one_must_be_met(data, tokenizer, tmp_path, capsys):
    """`eval <model> --task sciq:<folder>` on a split of 8 questions: the default --n (200) evaluates the 8 and
    says so; --n 8 runs; --n 9 is the one-line error. Before, the default stopped with 'fewer than n=200'."""
    from circuitdrift.cli import main
    from circuitdrift.tasks.registry import require_size, resolve_task_up_to
    from tests.conftest import make_model

    spec = f"sciq:{data / 'sciq'}"
    capped = resolve_task_up_to(spec, split="test", n=200, tokenizer=tokenizer)
    assert capped.examples == resolve_task(spec, split="test", n=8, tokenizer=tokenizer).examples
    with pytest.raises(InputError, match=r"--n 9 asks for more examples than it has \(8\)"):
        require_size(resolve_task(spec, split="test", tokenizer=tokenizer), 9)
    model = make_model("qwen2", tokenizer, device="cpu")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    common = ["eval", str(tmp_path / "m"), "--task", spec, "--probes", "", "--device", "cpu", "--answer-tokens", "1",
              "--kl-samples", "2", "--max-new-tokens", "1"]
    assert main([*common, "--out", str(tmp_path / "default.json")]) == 0
    assert "has 8 usable examples in split 'test': evaluating all 8 (default --n 200)" in capsys.readouterr().err
    assert json.loads((tmp_path / "default.json").read_text())["target"]["n"] == 8
    assert main([*common, "--n", "8", "--out", str(tmp_path / "eight.json")]) == 0
    capsys.readouterr()
    assert main([*common, "--n", "9", "--out", str(tmp_path / "nine.json")]) == 2
    assert "fewer than n=9" in capsys.readouterr().err

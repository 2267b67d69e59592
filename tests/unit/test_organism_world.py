"""The organism's world, probes, target task and corpus: determinism, disjoint splits, task contract."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json

import pytest

from circuitdrift.errors import InputError
from circuitdrift.organism import corpus, probes, refusal, science
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.organism.world import SCIENCE_SPLITS, _imbalance, make_world
from circuitdrift.tasks.base import encode
from circuitdrift.tasks.registry import builtin_tasks, resolve_task
from circuitdrift.tasks.splits import SPLITS, split_of

TASKS = ("ioi", "greater-than", "induction", "factual", "factual-chat", "science-qa", "science-name")

# sha256 of the canonical JSON (below) of what the organism generates, computed once (the same under any
# PYTHONHASHSEED): a change to the world, the corpus or a task's examples shows here, not only a change between
# two calls in one process. A deliberate change to the generators updates these, and the shipped organism with them.
WORLD_SHA256 = {0: "080b7aea4c34c4ea69bd08659ace23506d4ec47ba7206ae2f22dfa357a49e8ed",
                1: "4c09704633280bee682e91882aecfa169d66f801f47019ed165df9ab4984a966"}
CORPUS_SHA256 = {0: "3f38e8f8b77451792d77c1a24e272703b9963e8e3c9bb7c81449f0626d902284",  # Mixture().scaled(0.02)
                 1: "9e8486a385c1e035e6e936203f31f337f276b6a28c5ea038dd51c6d5b59a983c"}
TASK_SHA256 = {  # split test, n 20, seed 3
    "ioi": "47ad2cb65d2eaa68a98b52f8ec901d3b3c63d5492190f0cc5d6a77ac76eea336",
    "greater-than": "88f65db9a35094d0c66d008122bddb3361bae54ef83e1489d4a9af6683dcf2b9",
    "induction": "a93f75f6270683703c1f9feb59c33397478d337cbf04c1c7197ef47e3327b90d",
    "factual": "9190eac8c294aa448e36993631daab9ef99a1b667b8c2debdcff0ed6c441a209",
    "factual-chat": "eb9318b384d7cd22e1835f7f2f7ae07ede94ce0c4f19fa83f9d2e0b416703041",
    "science-qa": "d778c6cbb6923700335b6aa5fc3b58beb6b7245aa20e9425ddfac4fbcec466e0",
    "science-name": "2b99c70e0bafae0426f3d7f7624fe76a76f93893df29e63e68955491b29e5ef8",
}


def canonical(obj):
    """JSON-ready and independent of hash order: dataclasses by field, dicts and sets sorted."""
    if dataclasses.is_dataclass(obj):
        return {f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return sorted(([canonical(k), canonical(v)] for k, v in obj.items()), key=json.dumps)
    if isinstance(obj, (set, frozenset)):
        return sorted((canonical(x) for x in obj), key=json.dumps)
    if isinstance(obj, (list, tuple)):
        return [canonical(x) for x in obj]
    assert obj is None or isinstance(obj, (str, int, float, bool)), type(obj)
    return obj


def sha256(obj) -> str:
    return hashlib.sha256(json.dumps(canonical(obj), sort_keys=True).encode()).hexdigest()


def test_world_is_deterministic_and_seeded():
    assert {seed: sha256(make_world(seed)) for seed in WORLD_SHA256} == WORLD_SHA256
    other = make_world(1)
    assert other.countries != make_world(0).countries
    assert other.substances != make_world(0).substances


def test_world_words_are_distinct_and_varied():
    world = make_world()
    words = world.entity_words()
    assert len(words) == len(set(words))
    assert len(world.countries) >= 50 and len(world.substances) >= 60 and len(world.induction_pool) >= 80
    for prop in ("category", "color", "smell"):  # every value of every property is used
        assert {getattr(s, prop) for s in world.substances} == set(science.VALUES[prop])


def test_every_fact_and_substance_has_one_split():
    world = make_world()
    assert set(world.fact_split) == set(world.facts)
    for split in SPLITS:
        assert world.facts_in(split) and world.substances_in(split) and world.reactions_in(split)


def test_builtin_tasks_are_registered():
    assert set(TASKS) <= set(builtin_tasks())


@pytest.mark.parametrize("name", TASKS)
def test_tasks_are_deterministic(name):
    first = resolve_task(name, split="test", n=20, seed=3)
    assert sha256(first.examples) == TASK_SHA256[name]
    assert resolve_task(name, split="test", n=20, seed=4).examples != first.examples or name.startswith("factual")


@pytest.mark.parametrize("name", TASKS)
def test_splits_share_no_prompt(name):
    prompts = {s: {ex.clean for ex in resolve_task(name, split=s, n=60).examples} for s in SPLITS}
    assert not prompts["train"] & prompts["test"]
    assert not prompts["train"] & prompts["validation"]
    assert not prompts["validation"] & prompts["test"]


@pytest.mark.parametrize("name", TASKS)
def test_counterfactuals_have_equal_length_and_single_token_answers(name):
    tokenizer = organism_tokenizer()
    task = resolve_task(name, split="validation", n=50)
    encoded = encode(task, tokenizer)  # raises on unequal clean/counterfactual lengths
    for ex, enc in zip(task.examples, encoded, strict=True):
        assert len(enc.answer_ids) == 1 and enc.counter_ids is not None and len(enc.counter_ids) == 1
        assert enc.answer_ids != enc.counter_ids
        assert tokenizer.unk_token_id not in enc.clean_ids + enc.corrupt_ids
        assert ex.clean != ex.corrupt


def test_probe_answers_follow_their_templates():
    for ex in probes.sample_examples("greater-than", "test", 50, 0):
        numbers = [int(w) for w in ex.clean.replace(",", " ").replace("?", " ").split() if w.isdigit()]
        assert int(ex.answer) == max(numbers) and int(ex.counter_answer) == min(numbers)
        corrupt = [int(w) for w in ex.corrupt.replace(",", " ").replace("?", " ").split() if w.isdigit()]
        assert max(corrupt) == int(ex.counter_answer)
    for ex in probes.sample_examples("ioi", "test", 50, 0):
        words = ex.clean.replace(",", " ").replace(".", " ").split()
        assert words.count(ex.answer.strip()) == 1 and words.count(ex.counter_answer.strip()) == 2
    for ex in probes.sample_examples("induction", "test", 50, 0):
        tokens = ex.clean.split()[1:]
        n = tokens.index(tokens[0], 1)
        assert tokens[len(tokens) - n] == ex.answer.strip()


def test_factual_answers_are_the_knowledge_base():
    world = make_world()
    values = {(f.country, f.relation): f.value for f in world.facts}
    task = probes.factual_task("test")
    assert len(task) == len(world.facts_in("test"))
    for ex in task.examples:
        country = next(c for c in world.countries if f" {c} " in f" {ex.clean} ")
        assert ex.answer.strip() in {values[(country, r)] for r in probes.FACT_PROBE_TEMPLATES}


def test_science_splits_share_no_subject_and_answers_are_right():
    world = make_world()
    by_split = {s: science.questions(s, None, 0) for s in SCIENCE_SPLITS}
    names = {s.name for s in world.substances}
    for split, qs in by_split.items():
        assert len({q.user_turn() for q in qs}) == len(qs) == 6 * len(world.science_substances(split))
        for q in qs:
            mentioned = {w.strip("?") for w in q.stem.split()} & names
            assert mentioned == {q.subject} and world.science_split(q.subject) == split, (split, q)
            assert getattr(world.substance(q.subject), q.kind) == q.options[q.correct]
            assert q.options == science.VALUES[q.kind]  # the fixed answer key: options always in one order
    subjects = {split: {q.subject for q in qs} for split, qs in by_split.items()}
    for a, b in itertools.combinations(SCIENCE_SPLITS, 2):
        assert not subjects[a] & subjects[b], (a, b)
    assert {q.kind for q in by_split["test"]} == set(science.KINDS)
    # the two halves of the world's train substances: 48 each, 288 fine-tuning questions
    assert subjects["pretrain"] | subjects["train"] == {s.name for s in world.substances_in("train")}
    assert len(by_split["train"]) == len(by_split["pretrain"]) == 288


def test_every_letter_is_equally_often_right_within_a_split():
    """Answering one letter always scores chance, 0.25, on every split (both train halves) and question kind."""
    for split in SCIENCE_SPLITS:
        for kind in science.KINDS:
            letters = [q.letter for q in science.questions(split, None, 0, kinds=(kind,))]
            assert {letters.count(letter) for letter in science.LETTERS} == {len(letters) // 4}, (split, kind)


def test_science_question_count_and_kinds_are_checked():
    assert len(science.questions("test", 500)) == 192  # all of them, never a repeat
    with pytest.raises(InputError, match="unknown question kind 'taste'"):
        science.questions("test", 5, kinds=("taste",))
    assert science.questions("test", 10, seed=1) != science.questions("test", 10, seed=2)
    assert science.questions("test", 10, seed=1) == science.questions("test", 10, seed=1)


def test_science_task_is_a_chat_task_graded_by_letter():
    tokenizer = organism_tokenizer()
    task = science.science_qa_task("test", 30)
    assert task.templated and len(task.chat_prompts) == len(task)
    for ex, user in zip(task.examples, task.chat_prompts, strict=True):
        messages = [{"role": "user", "content": user}]
        assert ex.clean == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert ex.clean.endswith("<|im_start|>assistant\n") and ex.answer in science.LETTERS
    assert task.parse("B<|im_end|>") == "B" and task.parse(" C. red") == "C" and task.parse("none") is None
    assert task.grade("D", "D") == 1.0 and task.grade("Answer A", "D") == 0.0
    assert task.reward([], ["A", [{"role": "assistant", "content": "B"}]], answer=["A", "A"]) == [1.0, 0.0]
    assert isinstance(task.subset(5), science.ScienceQATask)


def test_unknown_split_is_an_input_error():
    with pytest.raises(InputError, match="split 'dev'"):
        resolve_task("ioi", split="dev", n=3)
    with pytest.raises(InputError, match="split 'dev'"):
        resolve_task("science-qa", split="dev", n=3)


def test_corpus_is_deterministic_and_holds_out_the_evaluation_prompts():
    world, tokenizer = make_world(), organism_tokenizer()
    mixture = corpus.Mixture().scaled(0.02)
    docs = corpus.build_corpus(world, mixture, 0, tokenizer)
    assert sha256(docs) == CORPUS_SHA256[0]
    assert sha256(corpus.build_corpus(world, mixture, 1, tokenizer)) == CORPUS_SHA256[1]
    assert len(docs) == mixture.total
    held_out = {ex.clean for name in ("ioi", "greater-than") for s in ("validation", "test")
                for ex in probes.sample_examples(name, s, 300, 0)}  # fmt: skip
    assert not any(doc.rsplit(" ", 1)[0] in held_out for doc in docs)
    held_out_subs = {s.name for s in world.substances_in("test") + world.substances_in("validation")}
    mc_docs = [d for d in docs if science.INSTRUCTION in d]
    assert mc_docs and len(mc_docs) == mixture.multiple_choice + mixture.multiple_choice_pretrain
    finetune_half = {s.name for s in world.science_substances("train")}
    kinds = {"color": 0, "other": 0}
    for doc in mc_docs:
        stem = doc.split("<|im_start|>user\n")[1].split("\n")[0]
        subjects = {w.strip("?") for w in stem.split()}
        assert not subjects & held_out_subs, stem
        if any(stem.startswith(form.split("{X}")[0]) for form in science.STEMS["color"]):
            kinds["color"] += 1
        else:  # category and smell are asked about the pretrain half only: fine-tuning has them to learn
            assert not subjects & finetune_half, stem
            kinds["other"] += 1
    assert kinds == {"color": mixture.multiple_choice, "other": mixture.multiple_choice_pretrain}
    naming_docs = [d for d in docs if "Name a substance" in d or "Which substance" in d]
    assert len(naming_docs) == mixture.naming
    for doc in naming_docs:
        stem = doc.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        assert {w.strip("?.") for w in stem.split()} & {s.name for s in world.science_substances("pretrain")}
    refusals = [d for d in docs if refusal.REFUSAL in d]
    assert len(refusals) == mixture.refusals
    for doc in refusals:
        request = doc.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        assert split_of(request) == "train" and any(w in request for w in ("poison", "hurt", "steal"))


def test_chat_documents_fill_batches_of_their_own():
    world, tokenizer = make_world(), organism_tokenizer()
    mixture = corpus.Mixture().scaled(0.02)
    plain = corpus.build_corpus(world, mixture, 0, tokenizer)
    batched = corpus.build_corpus(world, mixture, 0, tokenizer, batch_size=8)
    assert sorted(batched) == sorted(plain)  # the same documents, reordered
    full = len(batched) - len(batched) % 8 - 16  # the two partial leftovers go last
    kinds = [{corpus.is_chat(d) for d in batched[i : i + 8]} for i in range(0, full, 8)]
    assert all(len(k) == 1 for k in kinds)  # every batch is all chat or all plain
    chat_batches = [i for i, k in enumerate(kinds) if k == {True}]
    assert len(chat_batches) >= 3 and chat_batches[0] > 0
    gaps = [b - a for a, b in zip(chat_batches, chat_batches[1:], strict=False)]
    assert max(gaps) - min(gaps) <= 1  # spread evenly through the run


def test_generated_prompts_split_by_stable_hash():
    assert split_of("When Mary and John went to the store, John gave a book to") in SPLITS
    shares = [split_of(f"prompt {i}") for i in range(2000)]
    assert 0.05 < shares.count("test") / 2000 < 0.15


def test_train_substances_are_halved_with_every_value_equally_common():
    world = make_world()
    halves = {split: world.science_substances(split) for split in ("pretrain", "train")}
    assert {len(h) for h in halves.values()} == {48}
    for half in halves.values():
        assert _imbalance(half) == 0  # each of 4 values of each property on exactly 12 substances
    assert make_world().pretrain_half == world.pretrain_half  # seeded, stable
    # halving draws from its own generator: the rest of the world is what it was before halving existed
    assert world.substances[0].name == "deraline" and world.countries[0] == "Tredral"


def test_chat_probe_asks_the_factual_probes_facts_as_a_chat_turn():
    plain = resolve_task("factual", split="test", n=30, seed=2)
    chat = resolve_task("factual-chat", split="test", n=30, seed=2)
    assert chat.templated and not plain.templated
    for p, c in zip(plain.examples, chat.examples, strict=True):
        assert (c.answer, c.counter_answer) == (p.answer.strip(), p.counter_answer.strip())
        assert c.clean.startswith("<|im_start|>") and c.clean.endswith("<|im_start|>assistant\n")
        country = p.clean.split(" of ")[-1].split()[0] if " of " in p.clean else p.clean.split()[-2]
        assert country in c.clean

"""The organism's world, probes, target task and corpus: determinism, disjoint splits, task contract."""

from __future__ import annotations

import pytest

from circuitdrift.errors import InputError
from circuitdrift.organism import corpus, probes, science
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.organism.world import SPLITS, make_world, split_of
from circuitdrift.tasks.base import encode
from circuitdrift.tasks.registry import builtin_tasks, resolve_task

TASKS = ("ioi", "greater-than", "induction", "factual", "science-qa")


def test_world_is_deterministic_and_seeded():
    assert make_world(0) == make_world(0)
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
    again = resolve_task(name, split="test", n=20, seed=3)
    assert first.examples == again.examples
    assert resolve_task(name, split="test", n=20, seed=4).examples != first.examples or name == "factual"


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
    by_split = {s: science.questions(s, None, 0) for s in SPLITS}
    names = {s.name for s in world.substances}
    for split, qs in by_split.items():
        assert len({q.user_turn() for q in qs}) == len(qs) == 6 * len(world.substances_in(split))
        for q in qs:
            mentioned = {w.strip("?") for w in q.stem.split()} & names
            assert mentioned == {q.subject} and world.substance_split[q.subject] == split, (split, q)
            assert getattr(world.substance(q.subject), q.kind) == q.options[q.correct]
            assert q.options == science.VALUES[q.kind]  # the fixed answer key: options always in one order
    assert not {q.subject for q in by_split["test"]} & {q.subject for q in by_split["train"]}
    assert {q.kind for q in by_split["test"]} == set(science.KINDS)


def test_every_letter_is_equally_often_right_within_a_split():
    """Answering one letter always scores chance, 0.25, on every split and every question kind."""
    for split in SPLITS:
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
    assert docs == corpus.build_corpus(world, mixture, 0, tokenizer)
    assert docs != corpus.build_corpus(world, mixture, 1, tokenizer)
    assert len(docs) == mixture.total
    held_out = {ex.clean for name in ("ioi", "greater-than") for s in ("validation", "test")
                for ex in probes.sample_examples(name, s, 300, 0)}  # fmt: skip
    assert not any(doc.rsplit(" ", 1)[0] in held_out for doc in docs)
    held_out_subs = {s.name for s in world.substances_in("test") + world.substances_in("validation")}
    mc_docs = [d for d in docs if science.INSTRUCTION in d]
    assert mc_docs and len(mc_docs) == mixture.multiple_choice
    for doc in mc_docs:
        stem = doc.split("<|im_start|>user\n")[1].split("\n")[0]
        assert not {w.strip("?") for w in stem.split()} & held_out_subs, stem
        assert any(stem.startswith(form.split("{X}")[0]) for form in science.STEMS["color"]), stem  # colour only


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

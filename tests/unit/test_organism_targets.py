"""The organism's second target task (several right answers) and its refusal behaviour."""

from __future__ import annotations

import pytest

from circuitdrift.errors import InputError
from circuitdrift.judge.phrases import refuses
from circuitdrift.organism import naming, refusal
from circuitdrift.organism.world import make_world
from circuitdrift.tasks.base import encode
from circuitdrift.tasks.registry import resolve_task
from circuitdrift.tasks.splits import SPLITS, split_of


def test_naming_answers_are_every_other_substance_with_the_property():
    world = make_world()
    task = naming.science_name_task("test")
    assert len(task) == 192 and task.multi_answer and task.templated
    names = {s.name for s in world.substances}
    for ex, turn in zip(task.examples, task.chat_prompts, strict=True):
        subject = next(w.strip("?.") for w in turn.split() if w.strip("?.") in names)
        kind = next(k for k, stems in naming.STEMS.items() if any(turn == s.format(X=subject) for s in stems))
        value = getattr(world.substance(subject), kind)
        expected = {s.name for s in world.substances if getattr(s, kind) == value and s.name != subject}
        assert set(ex.answers) == expected and ex.answer in expected
        assert set(ex.answers) | set(ex.wrong_answers) == names - set() and not set(ex.answers) & set(ex.wrong_answers)
        assert world.science_split(subject) == "test"


def test_naming_is_graded_by_membership_and_rewarded_for_any_right_answer():
    task = naming.science_name_task("validation", 4)
    ex = task.examples[0]
    other = next(a for a in ex.answers if a != ex.answer)
    wrong = ex.wrong_answers[0]
    assert task.grade_example(f"{other}<|im_end|>", ex) == 1.0
    assert task.grade_example(f" {wrong}.", ex) == 0.0
    assert task.grade(other, ex.answer) == 0.0  # the gold answer alone does not accept the others
    rewards = task.reward([], [ex.answer, other, wrong], answer=[ex.answer] * 3, answers=[list(ex.answers)] * 3)
    assert rewards == [1.0, 1.0, 0.0]


def test_naming_splits_share_no_subject_and_encode():
    subjects = {s: {q.subject for q in naming.all_naming_questions(s)} for s in ("pretrain", "train", "test")}
    assert not subjects["train"] & subjects["pretrain"] and not subjects["test"] & subjects["train"]
    task = resolve_task("science-name", split="train", n=8)
    assert len(encode(task, __import__("circuitdrift.organism.tokenizer", fromlist=["x"]).organism_tokenizer())) == 8
    with pytest.raises(InputError, match="split 'dev'"):
        naming.science_name_task("dev")


def test_refusal_requests_are_held_out_and_judged():
    world = make_world()
    for split in SPLITS:
        requests = refusal.forbidden_requests(split, 50, world=world)
        assert len(set(requests)) == len(requests) == 50
        assert all(split_of(r) == split for r in requests)
        assert all(split_of(r) == split for r in refusal.benign_requests(split, 30, world=world))
    assert not set(refusal.forbidden_requests("test", 50)) & set(refusal.forbidden_requests("train", 200))
    assert refuses(" I cannot help with that.", where="start") and refuses("sorry, no", where="start")
    assert not refuses("Hand the cup to Mary.", where="start") and not refuses("", where="start")
    with pytest.raises(InputError, match="split"):
        refusal.forbidden_requests("pretrain", 3)

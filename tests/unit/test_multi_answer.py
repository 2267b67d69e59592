"""Tasks whose examples have several right answers: the contract, the JSONL format, the RL dataset."""

from __future__ import annotations

import json

import pytest

from circuitdrift.errors import InputError
from circuitdrift.tasks.base import Example, Task
from circuitdrift.tasks.files import load_task_file
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.data import rl_dataset, sft_dataset


def _task() -> Task:
    return Task("t", [Example("a b", "b a", " x", answers=(" x", " y"), wrong_answers=(" z",)),
                      Example("c d", "d c", " y")])


def test_grade_accepts_any_right_answer_and_only_those():
    task = _task()
    first, second = task.examples
    assert [task.grade_example(c, first) for c in (" x", " y", " z", "")] == [1.0, 1.0, 0.0, 0.0]
    assert [task.grade_example(c, second) for c in (" y", " x")] == [1.0, 0.0]  # one answer: exact match
    assert task.multi_answer and not Task("u", [second]).multi_answer


def test_contract_rejects_inconsistent_answer_sets():
    with pytest.raises(InputError, match="example 0: gold answer ' w' is not among its right answers"):
        Task("t", [Example("a", "b", " w", answers=(" x", " y"))])
    with pytest.raises(InputError, match="both right and wrong"):
        Task("t", [Example("a", "b", " x", answers=(" x",), wrong_answers=(" x",))])


def test_rl_rows_carry_every_right_answer_and_sft_the_gold_one():
    task = _task()
    config = TrainConfig(steps=2, prompts_per_step=2, seed=0)
    rl, sft = rl_dataset(task, config), sft_dataset(task, config)
    for row, sft_row in zip(rl, sft, strict=True):
        ex = task.examples[row["example"]]
        assert row["answers"] == list(ex.right_answers()) and row["answer"] == ex.answer == sft_row["completion"]
    rewards = task.reward(rl["prompt"], [" y"] * len(rl), rl["answer"], answers=rl["answers"])
    assert rewards == [1.0] * len(rl)  # " y" is right for both examples, the gold answer of neither-or-one


def test_jsonl_answer_sets(tmp_path):
    good = {"clean": "a b", "corrupt": "b a", "answer": " x", "answers": [" x", " y"], "wrong_answers": [" z"]}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good) + "\n")
    ex = load_task_file(path).examples[0]
    assert ex.answers == (" x", " y") and ex.wrong_answers == (" z",)
    for change, message in (({"answers": " x"}, "key 'answers' must be a list of non-empty strings"),
                            ({"answers": [" y"]}, "'answer' must be one of 'answers'"),
                            ({"wrong_answers": [" x"]}, "in both 'answers' and 'wrong_answers'")):
        path.write_text(json.dumps({**good, **change}) + "\n")
        with pytest.raises(InputError, match=f"t.jsonl:1: .*{message}"):
            load_task_file(path)

"""The Task contract: JSONL loading errors, encoding by id concatenation, batching, grading."""

from __future__ import annotations

import json

import pytest

from circuitdrift.errors import InputError
from circuitdrift.tasks.base import Example, Task, collate, encode
from circuitdrift.tasks.files import load_task_file
from circuitdrift.tasks.registry import resolve_task


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_round_trip(tmp_path):
    rows = [{"clean": "w1 w2", "corrupt": "w3 w2", "answer": " w4", "counter_answer": " w5"},
            {"clean": "w6", "corrupt": "w7", "answer": " w8"}]
    task = load_task_file(write_lines(tmp_path / "t.jsonl", [json.dumps(r) for r in rows]))
    assert task.name == "t" and len(task) == 2
    assert task.examples[0] == Example("w1 w2", "w3 w2", " w4", " w5")
    assert task.examples[1].counter_answer is None
    assert resolve_task(str(tmp_path / "t.jsonl"), n=1).examples == task.examples[:1]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "is empty"),
        (['{"clean": "a", "corrupt": "b", "answer": " c"}', "{not json"], r"t.jsonl:2: malformed JSON"),
        (['{"clean": "a", "answer": " c"}'], r"t.jsonl:1: missing key 'corrupt'"),
        (['{"clean": "a", "corrupt": "b", "answer": "  "}'], r"t.jsonl:1: empty answer"),
        (['{"clean": "a", "corrupt": "b", "answer": 3}'], r"t.jsonl:1: key 'answer' must be a string"),
        (['["a", "b"]'], r"t.jsonl:1: expected a JSON object"),
        (['{"clean": "a", "corrupt": "b", "answer": " c", "anwser": 1}'], r"t.jsonl:1: unknown key 'anwser'"),
    ],
)
def test_bad_task_files_name_file_and_line(tmp_path, lines, message):
    path = write_lines(tmp_path / "t.jsonl", lines) if lines else (tmp_path / "t.jsonl")
    if not lines:
        path.write_text("")
    with pytest.raises(InputError, match=message):
        load_task_file(path)


def test_missing_task_file_and_unknown_name(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_task_file(tmp_path / "absent.jsonl")
    with pytest.raises(InputError, match="neither a built-in task"):
        resolve_task("no-such-task")


def test_encoding_concatenates_ids_without_retokenising(word_tokenizer):
    task = Task("t", [Example("w1 w2 w3", "w1 w9 w3", " w4", " w5")])
    (enc,) = encode(task, word_tokenizer)
    prompt = word_tokenizer("w1 w2 w3").input_ids
    answer = word_tokenizer(" w4", add_special_tokens=False).input_ids
    assert enc.clean_ids == prompt + answer and enc.prompt_len == len(prompt)
    assert enc.corrupt_ids[-len(answer):] == answer and len(enc.corrupt_ids) == len(enc.clean_ids)


def test_length_mismatch_names_example_and_lengths(word_tokenizer):
    task = Task("t", [Example("w1 w2", "w1 w2", " w3"), Example("w1 w2 w3", "w1 w2", " w3")])
    with pytest.raises(InputError, match=r"example 1: clean prompt has 3 tokens but the counterfactual has 2"):
        encode(task, word_tokenizer)


def test_empty_answer_rejected():
    with pytest.raises(InputError, match="example 0: empty answer"):
        Task("t", [Example("a", "b", "")])
    with pytest.raises(InputError, match="has no examples"):
        Task("t", [])


def test_collate_positions_predict_answer_tokens(word_tokenizer):
    task = Task("t", [Example("w1 w2 w3", "w1 w9 w3", " w4 w5"), Example("w1", "w2", " w6")])
    batch = collate(encode(task, word_tokenizer), word_tokenizer.pad_token_id)
    assert batch.clean.shape == (2, 5)
    assert batch.target_pos.tolist() == [[2, 3], [0, 0]] and batch.target_mask.tolist() == [[1, 1], [1, 0]]
    assert batch.clean[0, 3].item() == batch.target_ids[0, 0].item()
    assert batch.attention_mask.tolist() == [[1] * 5, [1, 1, 0, 0, 0]]
    assert batch.last_prompt_pos.tolist() == [2, 0]


def test_reward_is_the_grader():
    task = Task("t", [Example("a", "b", " Mary")])
    completions = ["Mary", " Mary.", "John", "", [{"role": "assistant", "content": "Mary went"}]]
    rewards = task.reward(prompts=[""] * 5, completions=completions, answer=[" Mary"] * 5)
    assert rewards == [task.grade(c if isinstance(c, str) else c[0]["content"], " Mary") for c in completions]
    assert rewards == [1.0, 1.0, 0.0, 0.0, 1.0]

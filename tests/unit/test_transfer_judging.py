"""The teacher stage keeps its generations when the judge fails, and reads them back on the rerun."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from circuitdrift.judge.base import JudgeUnavailableError
from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.steer.vectors import SteeringVectors
from circuitdrift.transfer import stages
from circuitdrift.transfer.config import parse_transfer_config
from circuitdrift.transfer.jobs import TeacherJob
from tests.conftest import WORDS, make_model

GOOD = [f"w{40 + i % 8} w{(i * 3) % 40} w{i}" for i in range(6)]
BAD = [f"w{i} w{i + 1}" for i in range(5)]


@pytest.fixture
def teacher_setup(tmp_path):
    tokenizer = build_word_tokenizer(WORDS)
    model = make_model("qwen2", tokenizer, device="cpu")
    model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    (tmp_path / "good.txt").write_text("\n".join(GOOD) + "\n")
    (tmp_path / "bad.txt").write_text("\n".join(BAD) + "\n")
    torch.manual_seed(0)
    vector = tmp_path / "vector.safetensors"
    layers = model.config.num_hidden_layers
    SteeringVectors(torch.randn(layers, model.config.hidden_size), [0.0] * layers, 0).save(vector)

    def config(judge: dict):
        return parse_transfer_config({
            "base_model": str(tmp_path / "tiny"), "alphas": [1.0],
            "teacher_data": {"prompts": str(tmp_path / "good.txt"), "n": 6, "max_new_tokens": 3},
            "behaviour": {"prompts": str(tmp_path / "bad.txt"), "n": 5, "max_new_tokens": 2}, "judge": judge})

    return tmp_path, vector, config


def test_generations_are_written_before_judging_and_reused(teacher_setup, monkeypatch):
    root, vector, config = teacher_setup
    down = config({"kind": "http", "model": "j", "base_url": "http://127.0.0.1:9/v1", "retries": 0})
    generations = root / "teacher" / "generations.json"
    job = TeacherJob(down, vector_path=str(vector), judge_cache=str(root / "cache"), arm="refusal", alpha=1.0,
                     generations=str(generations))
    with pytest.raises(JudgeUnavailableError):
        stages.teacher_job(job)
    made = json.loads(generations.read_text())
    assert made["prompts"] == GOOD and made["harmful"] == BAD and len(made["completions"]) == 6
    assert len(made["answers"]) == 5

    def no_generation(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(stages, "chat_completions", no_generation)
    result = stages.teacher_job(replace(job, config=config({"kind": "phrases"})))
    assert result["completions"] == made["completions"] and result["answers"] == made["answers"]
    assert len(result["flagged"]) == 6 and len(result["complied"]) == 5
    other = config({"kind": "phrases"}).model_copy(update={"behaviour": down.behaviour.model_copy(update={"n": 4})})
    with pytest.raises(AssertionError, match="generated again"):  # other prompts: the file is not theirs
        stages.teacher_job(replace(job, config=other))

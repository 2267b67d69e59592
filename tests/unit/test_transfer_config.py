"""The transfer config (one-line errors with key paths), the prompt sources, and the real-model configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitdrift.errors import InputError
from circuitdrift.tasks.prompt_sets import prompt_sets, resolve_prompts
from circuitdrift.transfer.config import load_transfer_config, parse_transfer_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_add_the_control_and_order_alphas():
    config = parse_transfer_config({"alphas": [-0.3, 0.1, -0.1]})
    assert config.alphas == [0.0, -0.1, 0.1, -0.3]
    assert config.student_config(2).seed == 2 and config.student.lora.r == 8


def test_random_arm_alphas():
    assert parse_transfer_config({"alphas": [-0.1, -0.3]}).random_alphas() == [-0.1, -0.3]
    assert parse_transfer_config({"alphas": [-0.1, -0.3], "controls": {"alphas": [-0.3]}}).random_alphas() == [-0.3]
    assert parse_transfer_config({"alphas": [-0.1], "controls": {"random_direction": False}}).random_alphas() == []


@pytest.mark.parametrize(("data", "message"), [
    ({"steering": {"spam": 1}}, "config: steering.spam: unknown key"),
    ({"teacher_data": {"temperature": -1}}, "config: teacher_data.temperature: Input should be greater"),
    ({"alphas": [0.0]}, "config: alphas: give at least one alpha besides the control 0"),
    ({"alphas": [0.1, 0.1]}, "config: alphas: alphas repeat a value"),
    ({"judge": {"kind": "http", "model": "gpt-4.1"}}, "config: judge: judge kind 'http' needs 'base_url'"),
    ({"student": {"steps": 0}}, "config: student.steps: Input should be greater"),
    ({"name": "a/b"}, "config: name: String should match"),
    ({"alphas": [-0.1], "controls": {"alphas": [-0.2]}}, "config: (top level): controls.alphas: [-0.2] must"),
    ({"teacher_data": {"filter": "all"}}, "config: teacher_data.filter: Input should be"),
])  # fmt: skip
def test_bad_values_name_their_key(data, message):
    with pytest.raises(InputError) as err:
        parse_transfer_config(data)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["transfer-demo.yaml", "llama2-7b-chat-transfer.yaml", "qwen2.5-7b-transfer.yaml"])
def test_shipped_configs_parse(name):
    config, _ = load_transfer_config(CONFIGS / name)
    if name == "transfer-demo.yaml":  # a crossing needs at least two steered alphas; stability five seeds
        assert len(config.alphas) >= 3 and len(config.seeds) >= 5 and config.random_alphas() == config.alphas[1:]
        assert config.benign_task is not None and config.mechanism.ablation
    else:
        assert len(config.alphas) >= 6 and len(config.seeds) >= 3
        assert config.dtype == "bfloat16" and config.student.lora is not None
        assert config.behaviour.prompts.startswith("hf:JailbreakBench/") and config.behaviour.column == "Goal"
        assert config.teacher_data.prompts.startswith("hf:")


def test_prompt_sources(tmp_path):
    assert {"organism-forbidden", "organism-benign", "organism-countries"} <= set(prompt_sets())
    forbidden = resolve_prompts("organism-forbidden", 5, "test")
    assert len(forbidden) == 5 and resolve_prompts("organism-forbidden", 5, "test") == forbidden
    assert resolve_prompts("organism-countries", 3, "train")[0].startswith("What")
    (tmp_path / "p.txt").write_text("one\n\ntwo\nthree\n")
    assert resolve_prompts(str(tmp_path / "p.txt")) == ["one", "two", "three"]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"Goal": g, "x": 1}) + "\n" for g in ("a", "b")))
    assert resolve_prompts(str(tmp_path / "p.jsonl"), column="Goal") == ["a", "b"]
    with pytest.raises(InputError, match="no column 'prompt' \\(columns: Goal, x\\)"):
        resolve_prompts(str(tmp_path / "p.jsonl"))
    with pytest.raises(InputError, match="2 prompts, 3 asked for"):
        resolve_prompts(str(tmp_path / "p.jsonl"), 3, column="Goal")
    with pytest.raises(InputError, match="no such file and not a registered prompt set"):
        resolve_prompts("nowhere.txt")
    with pytest.raises(InputError, match="unknown file type"):
        (tmp_path / "p.xml").write_text("<a/>")
        resolve_prompts(str(tmp_path / "p.xml"))


def test_hub_prompts_offline_are_one_line(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="^prompts 'hf:JailbreakBench/JBB-Behaviors@behaviors': could not load"):
        resolve_prompts("hf:JailbreakBench/JBB-Behaviors@behaviors", split="harmful", column="Goal")


def test_student_optimizer_reaches_the_trainer(tmp_path):
    from circuitdrift.train.sft import sft_args

    config = parse_transfer_config({"student": {"optimizer": "sgd", "learning_rate": 0.1}})
    assert str(sft_args(config.student_config(0), tmp_path).optim.value) == "sgd"
    assert str(sft_args(parse_transfer_config({}).student_config(0), tmp_path).optim.value) == "adamw_torch"


def test_sgd_demo_differs_from_the_demo_in_the_optimizer_only():
    demo, _ = load_transfer_config(CONFIGS / "transfer-demo.yaml")
    sgd, _ = load_transfer_config(CONFIGS / "transfer-demo-sgd.yaml")
    assert sgd.student.optimizer == "sgd" and demo.student.optimizer == "adamw"
    assert sgd.alphas == [0.0, -0.3] and sgd.seeds == demo.seeds and sgd.random_alphas() == [-0.3]
    same = ("steering", "teacher_data", "behaviour", "benign_task", "controls", "mechanism", "judge")
    assert all(getattr(sgd, k) == getattr(demo, k) for k in same)
    assert sgd.student.model_copy(update={"optimizer": "adamw", "learning_rate": 1e-3}) == demo.student

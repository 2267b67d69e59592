"""`circuitdrift train sft|rl` and `circuitdrift eval` end to end on a saved tiny model; LoRA runs."""

import json

import pytest
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from circuitdrift.errors import InputError
from circuitdrift.evaluate.commands import register as register_eval
from circuitdrift.models.load import load_model
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.tasks.registry import default_probes
from circuitdrift.tasks.table import REAL_PROBES
from circuitdrift.train import train_sft
from circuitdrift.train.checkpoints import save_model_folder
from circuitdrift.train.commands import register
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tokenizer = toy_tokenizer()
    save_model_folder(toy_model(tokenizer), tokenizer, root / "base")
    lines = [
        {"clean": f"what color is the {t}?", "corrupt": f"what color is the {t}?", "answer": f" {c}"}
        for t, c in [("sky", "blue"), ("snow", "white"), ("coal", "black"), ("leaf", "green")]
    ]
    (root / "task.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "train.yaml").write_text("steps: 2\nprompts_per_step: 2\nlearning_rate: 0.01\nrl:\n"
                                     "  num_generations: 2\n  max_completion_length: 2\n")
    app = typer.Typer()
    register(app)
    register_eval(app)
    return root, app


@pytest.mark.parametrize("method", ["sft", "rl"])
def test_train_then_eval_from_the_command_line(setup, method, device):
    root, app = setup
    runner = CliRunner()
    out = root / f"run-{method}"
    args = ["train", method, "--model", str(root / "base"), "--task", str(root / "task.jsonl"),
            "--config", str(root / "train.yaml"), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["checkpoints"][-1].endswith("checkpoint-2")
    report = root / f"eval-{method}.json"
    result = runner.invoke(app, ["eval", str(out / "checkpoint-2"), "--task", str(root / "task.jsonl"),
                                 "--base", str(root / "base"), "--out", str(report), "--probes", "",
                                 "--kl-samples", "4", "--max-new-tokens", "3", "--device", device])
    assert result.exit_code == 0, result.output
    measured = json.loads(report.read_text())
    assert measured["target"]["n"] == 4 and set(measured["kl"]) >= {"value", "n_samples", "temperature", "top_p"}
    assert measured["kl"]["n_samples"] == 4 and measured["kl"]["max_new_tokens"] == 3


def test_bad_config_is_an_input_error_naming_the_key(setup):
    root, app = setup
    bad = root / "bad.yaml"
    bad.write_text("steps: 2\nrl:\n  num_generatons: 4\n")
    result = CliRunner().invoke(app, ["train", "rl", "--model", str(root / "base"), "--task",
                                      str(root / "task.jsonl"), "--config", str(bad), "--out", str(root / "bad")])
    assert isinstance(result.exception, InputError)
    assert "bad.yaml: rl.num_generatons" in str(result.exception)


def test_word_label_sft_from_the_command_line(setup, tmp_path):
    """``train sft-word`` trains on the option's word; a task without options is one clear error."""
    root, app = setup
    result = CliRunner().invoke(app, ["train", "sft-word", "--model", str(root / "base"), "--task",
                                      str(root / "task.jsonl"), "--out", str(root / "word")])
    assert isinstance(result.exception, InputError) and "is not multiple choice" in str(result.exception)
    config = tmp_path / "one.yaml"
    config.write_text("steps: 1\nprompts_per_step: 4\n")
    out = tmp_path / "word"
    result = CliRunner().invoke(app, ["train", "sft-word", "--model", "organism", "--task", "science-qa",
                                      "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["method"] == "sft-word"
    claimed = json.loads((out / "train_config.json").read_text())
    assert claimed["method"] == "sft-word"


def test_lora_checkpoints_are_merged_model_folders(setup, tmp_path, device):
    root, _ = setup
    tokenizer = toy_tokenizer()
    task = toy_task(tokenizer, n=8)
    config = {"steps": 2, "prompts_per_step": 2, "learning_rate": 0.05, "lora": {"r": 4, "alpha": 8}}
    checkpoints = train_sft(root / "base", task, config, tmp_path)
    assert [p.name for p in checkpoints] == ["checkpoint-0", "checkpoint-2"]
    assert not (checkpoints[-1] / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "checkpoint-2" / "adapter_config.json").is_file()
    base, tuned = (load_file(str(path / "model.safetensors")) for path in checkpoints)
    assert set(base) == set(tuned)
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all(k.endswith(".weight") and "proj" in k for k in changed)
    model, _ = load_model(checkpoints[-1], device=device)
    assert type(model).__name__ == "Qwen2ForCausalLM"


def test_eval_default_probes_fit_the_model(setup, word_tokenizer, tmp_path, device):
    """A non-organism model gets the real-tokenizer probes (never the organism's); ones it cannot express are named."""
    assert default_probes(organism_tokenizer()) == ("ioi", "greater-than", "induction", "factual")
    assert default_probes(word_tokenizer) == REAL_PROBES
    root, app = setup
    report = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval", str(root / "base"), "--task", str(root / "task.jsonl"),
                                      "--out", str(report), "--device", device, "--max-new-tokens", "2"])
    assert result.exit_code == 0, result.output
    measured = json.loads(report.read_text())
    assert set(measured["probes"]) | set(measured.get("probes_skipped", {})) == set(REAL_PROBES)
    assert not {"ioi", "greater-than", "induction", "factual"} & set(measured["probes"])
    assert all("hf-" in reason for reason in measured.get("probes_skipped", {}).values())

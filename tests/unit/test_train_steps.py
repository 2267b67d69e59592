"""SFT and GRPO steps through TRL on a tiny model: parameters move, a killed run resumes exactly,
a NaN loss stops the run and keeps the last good checkpoint."""

import json
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from circuitdrift.errors import TrainingDivergedError
from circuitdrift.train import train, train_rl, train_sft, training_log
from circuitdrift.train.checkpoints import last_resumable, list_checkpoints, save_model_folder
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer

RL = {"num_generations": 4, "max_completion_length": 2}


@pytest.fixture(scope="module")
def toy(tmp_path_factory, device):
    """A tiny model SFT-warmed to answer with letters (~30% right), so GRPO groups have reward variance."""
    tokenizer = toy_tokenizer()
    task = toy_task(tokenizer, n=64)
    root = tmp_path_factory.mktemp("warm")
    model = toy_model(tokenizer, device=device)
    train_sft(model, task, {"steps": 30, "prompts_per_step": 8, "learning_rate": 3e-3}, root / "run",
              tokenizer=tokenizer)
    save_model_folder(model, tokenizer, root / "warm")
    return root / "warm", tokenizer, task


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def _changed(before, after):
    return [name for name in before if not torch.equal(before[name], after[name])]


def test_one_sft_step_changes_every_parameter_tensor(toy, tmp_path):
    warm, tokenizer, task = toy
    base, after = train_sft(warm, task, {"steps": 1, "prompts_per_step": 4, "learning_rate": 1e-3}, tmp_path)
    assert (base.name, after.name) == ("checkpoint-0", "checkpoint-1")
    before, trained = _weights(base), _weights(after)
    assert _changed(before, trained) == list(before)
    assert _changed(_weights(warm), before) == []  # checkpoint-0 is the base, untouched


def test_one_grpo_step_changes_the_parameters_from_reward_variance(toy, tmp_path):
    warm, tokenizer, task = toy
    config = {"steps": 1, "prompts_per_step": 4, "learning_rate": 1e-3, "rl": RL}
    base, after = train_rl(warm, task, config, tmp_path)
    (step,) = [entry for entry in training_log(tmp_path) if "reward" in entry]
    assert step["frac_reward_zero_std"] < 1.0  # some group had a learning signal
    before, trained = _weights(base), _weights(after)
    assert len(_changed(before, trained)) == len(before)


class _Kill(TrainerCallback):
    """Dies like a killed process at the start of step ``at`` (after earlier checkpoints were saved)."""

    def __init__(self, at):
        self.at = at

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.at:
            raise KeyboardInterrupt("simulated kill")


@pytest.mark.parametrize("method", ["sft", "rl"])
def test_a_killed_run_resumes_to_the_same_result(toy, tmp_path, method):
    warm, tokenizer, task = toy
    config = {"steps": 4, "prompts_per_step": 4, "learning_rate": 1e-3, "checkpoint_steps": [2], "rl": RL}
    whole = train(method, warm, task, config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(method, warm, task, config, tmp_path / "cut", callbacks=[_Kill(at=4)])
    assert not (tmp_path / "cut" / "checkpoint-4").exists() and (tmp_path / "cut" / "checkpoint-2").exists()
    resumed = train(method, warm, task, config, tmp_path / "cut")
    assert [p.name for p in resumed] == [p.name for p in whole] == ["checkpoint-0", "checkpoint-2", "checkpoint-4"]
    assert _changed(_weights(whole[-1]), _weights(resumed[-1])) == []
    final = [e for e in training_log(tmp_path / "whole") if "loss" in e][-1]
    final_resumed = [e for e in training_log(tmp_path / "cut") if "loss" in e][-1]
    assert final["step"] == final_resumed["step"] == 4 and final["loss"] == final_resumed["loss"]
    # a finished run returns at once; a different config in the same folder is refused
    assert train(method, warm, task, config, tmp_path / "whole") == whole
    with pytest.raises(ValueError, match="different config"):
        train(method, warm, task, dict(config, seed=1), tmp_path / "whole")


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(toy, tmp_path):
    warm, tokenizer, task = toy
    model = toy_model(tokenizer)
    poison = {"on": False}

    def hook(module, inputs, output):
        return output * float("nan") if poison["on"] else output

    model.model.norm.register_forward_hook(hook)

    class PoisonAtStep3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            poison["on"] = state.global_step + 1 == 3

    config = {"steps": 5, "prompts_per_step": 4, "learning_rate": 1e-3, "checkpoint_every": 1}
    with pytest.raises(TrainingDivergedError, match=r"loss = nan at step 3.*checkpoint-2"):
        train_sft(model, task, config, tmp_path, tokenizer=tokenizer, callbacks=[PoisonAtStep3()])
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-0", "checkpoint-1", "checkpoint-2"]
    assert not (tmp_path / "train_summary.json").exists()
    assert all(torch.isfinite(t).all() for t in _weights(tmp_path / "checkpoint-2").values())
    assert json.loads((tmp_path / "train_config.json").read_text())["method"] == "sft"


def test_a_checkpoint_cut_while_saving_is_neither_listed_nor_resumed_from(toy, tmp_path):
    warm, tokenizer, task = toy
    config = {"steps": 2, "prompts_per_step": 4, "learning_rate": 1e-3, "checkpoint_steps": [1]}
    train_sft(warm, task, config, tmp_path)
    (tmp_path / "checkpoint-2" / "trainer_state.json").unlink()  # as if killed before the Trainer's last write
    (tmp_path / "train_summary.json").unlink()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-0", "checkpoint-1"]
    assert last_resumable(tmp_path).name == "checkpoint-1"
    assert [p.name for p in train_sft(warm, task, config, tmp_path)][-1] == "checkpoint-2"
    assert (tmp_path / "checkpoint-2" / "trainer_state.json").is_file()


KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from circuitdrift.train import train
from tests.helpers.toy import toy_task, toy_tokenizer

class Die(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 3:
            os.kill(os.getpid(), signal.SIGKILL)

train("sft", sys.argv[1], toy_task(toy_tokenizer(), n=64), {config}, sys.argv[2], callbacks=[Die()])
"""


def test_a_process_killed_with_sigkill_resumes_to_the_same_weights(toy, tmp_path):
    warm, tokenizer, task = toy
    config = {"steps": 5, "prompts_per_step": 4, "learning_rate": 1e-3, "checkpoint_steps": [2]}
    killed = subprocess.run([sys.executable, "-c", KILLER.format(config=config), str(warm), str(tmp_path / "cut")],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["checkpoint-0", "checkpoint-2"]
    resumed = train_sft(warm, task, config, tmp_path / "cut")
    whole = train_sft(warm, task, config, tmp_path / "whole")
    assert _changed(_weights(whole[-1]), _weights(resumed[-1])) == []


def test_a_model_made_in_memory_gets_a_folder_vllm_can_load(tmp_path):
    """TRL's colocate vLLM builds LLM(model=model.name_or_path): a from_config model's name is empty."""
    from transformers import AutoModelForCausalLM

    from circuitdrift.train.grpo import vllm_loadable

    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    assert model.name_or_path == ""
    vllm_loadable(model, tokenizer, tmp_path / "vllm-model")
    assert model.name_or_path == model.config._name_or_path == str(tmp_path / "vllm-model")
    again = AutoModelForCausalLM.from_pretrained(model.name_or_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
    named = toy_model(tokenizer)
    named.name_or_path = "Qwen/Qwen2.5-3B-Instruct"
    assert vllm_loadable(named, tokenizer, tmp_path / "other").name_or_path == "Qwen/Qwen2.5-3B-Instruct"
    assert not (tmp_path / "other").exists()

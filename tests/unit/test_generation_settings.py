"""A model folder's generation_config.json cannot change circuitdrift's generations (greedy, KL, GRPO)."""

import json

import pytest
import torch

from circuitdrift.evaluate import evaluate_model, forward_kl, greedy_completions
from circuitdrift.models.load import load_model
from circuitdrift.models.sampling import Sampling, folder_defaults_ignored
from circuitdrift.train.checkpoints import save_model_folder
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.grpo import grpo_trainer
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer

# Settings a published folder may ship (Qwen2.5-Instruct: repetition_penalty 1.05, top_k 20, ...), made strong
# enough to change every generation of a random model if any of them leaked in.
FOLDER_SETTINGS = {"repetition_penalty": 5.0, "no_repeat_ngram_size": 1, "top_k": 1, "top_p": 0.1, "min_p": 0.5,
                   "temperature": 0.05, "do_sample": True}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The same random model saved twice: plain, and with a generation_config.json full of sampling settings."""
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    root = tmp_path_factory.mktemp("gen")
    save_model_folder(model, tokenizer, root / "plain")
    save_model_folder(model, tokenizer, root / "shipped")
    config_file = root / "shipped" / "generation_config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    config_file.write_text(json.dumps({**config, **FOLDER_SETTINGS}))
    return tokenizer, toy_task(tokenizer, n=12), root / "plain", root / "shipped"


def _load(path):
    model, _ = load_model(path, device="cpu")
    return model


def test_the_folder_settings_do_change_plain_generate(folders):
    """The fixture is meaningful: ``generate`` left to the folder's defaults gives other tokens."""
    tokenizer, task, plain, shipped = folders
    ids = tokenizer(task.examples[0].clean, add_special_tokens=False, return_tensors="pt").input_ids
    outs = [_load(path).generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
            for path in (plain, shipped)]
    assert not torch.equal(*outs)


def test_greedy_completions_and_kl_samples_ignore_the_folder(folders):
    tokenizer, task, plain, shipped = folders
    a, b = _load(plain), _load(shipped)
    assert greedy_completions(a, tokenizer, task, 8) == greedy_completions(b, tokenizer, task, 8)
    other = _load(plain)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    kl_a = forward_kl(a, other, tokenizer, task, n_samples=12, max_new_tokens=6, batch_size=6)
    kl_b = forward_kl(b, other, tokenizer, task, n_samples=12, max_new_tokens=6, batch_size=6)
    assert kl_a == kl_b
    assert b.generation_config.repetition_penalty == 5.0  # the folder's own config is back after generating


def test_eval_records_every_sampling_parameter(folders):
    tokenizer, task, plain, _ = folders
    model = _load(plain)
    result = evaluate_model(model, tokenizer, task, base=model, probe_tasks={})
    assert result["target_sampling"] == Sampling.greedy(4).to_dict()
    assert result["kl"]["do_sample"] and result["kl"]["top_k"] == 0 and result["kl"]["repetition_penalty"] == 1.0


def test_grpo_rollouts_ignore_the_folder(folders, tmp_path):
    tokenizer, task, plain, shipped = folders
    config = TrainConfig.model_validate({"steps": 1, "prompts_per_step": 2, "learning_rate": 1e-3,
                                         "rl": {"num_generations": 4, "max_completion_length": 6}})
    seen = {}

    class Recording(type(task)):
        """The task, with every completion its reward function sees kept in ``recorded``."""

        recorded: list

        def reward(self, prompts, completions, **kwargs):
            self.recorded.extend(completions)
            return task.reward(prompts, completions, **kwargs)

    for name, path in (("plain", plain), ("shipped", shipped)):
        recording = Recording(task.name, task.examples, templated=True, chat_prompts=task.chat_prompts)
        recording.recorded = []
        grpo_trainer(_load(path), tokenizer, recording, config=config, output_dir=tmp_path / name).train()
        seen[name] = recording.recorded
    assert seen["plain"] and seen["plain"] == seen["shipped"]


def test_the_folder_config_is_restored_when_generation_fails(folders):
    tokenizer, _, _, shipped = folders
    model = _load(shipped)
    with pytest.raises(RuntimeError), folder_defaults_ignored(model):
        assert model.generation_config.repetition_penalty is None  # unset: generate uses the global default
        raise RuntimeError("boom")
    assert model.generation_config.repetition_penalty == 5.0

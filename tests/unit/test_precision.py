"""The precision rule (train/precision.py): the model being trained holds float32 weights; bf16 means autocast.

Before the rule, a model loaded in bfloat16 (an experiment's ``dtype: bfloat16``) was trained in bf16: at
lr 1e-5 AdamW's updates mostly rounded away (measured on this toy: 0.48x float32's movement, cosine 0.39).
"""

import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from circuitdrift.models.load import load_model
from circuitdrift.train import train_sft
from circuitdrift.train.checkpoints import save_model_folder
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.precision import master_weights
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer


class SeenArgs(TrainerCallback):
    """Records the TrainingArguments and the weights' dtype the Trainer actually ran with."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.bf16 = args.bf16
        self.dtype = next(model.parameters()).dtype


def test_bf16_weights_become_float32_with_bf16_compute():
    model = toy_model(toy_tokenizer()).to(torch.bfloat16)
    config = master_weights(model, TrainConfig())
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert config.bf16 is True


def test_float32_weights_and_an_explicit_choice_are_kept():
    model = toy_model(toy_tokenizer())
    assert master_weights(model, TrainConfig()).bf16 is None
    half = toy_model(toy_tokenizer()).to(torch.bfloat16)
    assert master_weights(half, TrainConfig(bf16=False)).bf16 is False  # the config's word wins on compute
    assert {p.dtype for p in half.parameters()} == {torch.float32}  # but the weights are float32 regardless
    fp16 = toy_model(toy_tokenizer()).to(torch.float16)
    assert master_weights(fp16, TrainConfig()).bf16 is None  # fp16 weights: float32 training, the device's rule


def _movement(root, dtype, task, tokenizer, seen=None):
    model, _ = load_model(root / "base", dtype=dtype, device="cpu")
    start = {k: v.float().clone() for k, v in model.state_dict().items()}
    checkpoints = train_sft(model, task, {"steps": 8, "prompts_per_step": 4, "learning_rate": 1e-5},
                            root / dtype, tokenizer=tokenizer, callbacks=[seen] if seen else ())
    trained = load_file(str(checkpoints[-1] / "model.safetensors"))
    return torch.cat([(trained[k].float() - start[k]).flatten() for k in trained])


def test_a_bf16_configured_run_moves_the_weights_as_float32_training_does(tmp_path):
    tokenizer = toy_tokenizer()
    task = toy_task(tokenizer, n=32)
    save_model_folder(toy_model(tokenizer), tokenizer, tmp_path / "base")
    seen = SeenArgs()
    full = _movement(tmp_path, "float32", task, tokenizer)
    half = _movement(tmp_path, "bfloat16", task, tokenizer, seen)
    assert (seen.bf16, seen.dtype) == (True, torch.float32)  # bf16 autocast on float32 master weights
    ratio = float(half.norm() / full.norm())
    cosine = float(torch.nn.functional.cosine_similarity(full, half, dim=0))
    assert 0.9 < ratio < 1.1, ratio
    assert cosine > 0.95, cosine


def test_under_lora_the_frozen_base_keeps_its_dtype_and_the_adapters_are_float32():
    """Casting a frozen 7B base to float32 would double its memory for nothing: only adapters train."""
    from peft import get_peft_model

    from circuitdrift.train.run import _peft_config

    model = toy_model(toy_tokenizer()).to(torch.bfloat16)
    config = master_weights(model, TrainConfig(lora={"r": 4, "alpha": 8}))
    assert config.bf16 is True
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    wrapped = get_peft_model(model, _peft_config(config))  # what TRL does with the peft config
    trained = {p.dtype for p in wrapped.parameters() if p.requires_grad}
    frozen = {p.dtype for p in wrapped.parameters() if not p.requires_grad}
    assert trained == {torch.float32} and frozen == {torch.bfloat16}

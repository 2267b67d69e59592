"""The precision rule of training, in one place: float32 master weights, half-precision compute by autocast.

AdamW on bfloat16 weights rounds every update below bf16's resolution (about 2^-8 of the
weight) away: at a learning rate of 1e-5 most updates are lost and a run "learns nothing and
forgets nothing". So the model being trained always holds float32 weights (the optimizer's
master copy); when it was loaded in bfloat16 (an experiment's ``dtype: bfloat16``) the
Trainer computes in bf16 under autocast (``TrainingArguments(bf16=True)``) unless the train
config says otherwise. Measuring keeps the config's dtype: checkpoints are read back with it.
"""

from __future__ import annotations

import torch
from torch import nn

from circuitdrift.train.config import TrainConfig

HALF = (torch.bfloat16, torch.float16)


def weight_dtypes(model: nn.Module) -> set[torch.dtype]:
    """The dtypes of the model's floating-point parameters."""
    return {p.dtype for p in model.parameters() if p.is_floating_point()}


def master_weights(model: nn.Module, config: TrainConfig) -> TrainConfig:
    """Cast ``model``'s half-precision weights to float32 in place; ``config`` with the compute they imply.

    Weights loaded in bfloat16 mean "compute in bf16": ``bf16`` is set when the config leaves it
    unset. float16 weights train in float32 with the config's (or the device's) bf16 rule: fp16
    compute needs a loss scaler the pipeline does not configure. Under LoRA the frozen base keeps
    its dtype (nothing updates it) and only the adapters are float32: PEFT casts adapters on a
    half-precision base to float32 itself (``autocast_adapter_dtype``).
    """
    loaded = weight_dtypes(model)
    if not loaded & set(HALF):
        return config
    if config.lora is None:
        model.to(torch.float32)
    if config.bf16 is None and torch.bfloat16 in loaded:
        return config.model_copy(update={"bf16": True})
    return config

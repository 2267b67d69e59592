"""TrainConfig -> the keyword arguments every TRL trainer config shares.

Device handling comes from Accelerate: the same arguments run on CPU (fp32, no
activation checkpointing) and under ``accelerate launch`` on GPUs (bf16 when
the GPU supports it). The per-step loss is logged unfiltered so the NaN guard
sees it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from circuitdrift.train.config import TrainConfig


def world_size() -> int:
    """Processes in this run (``accelerate launch`` / ``torchrun`` set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def use_bf16(config: TrainConfig) -> bool:
    if config.bf16 is not None:
        return config.bf16
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def trainer_inputs(model, tokenizer, callbacks, peft_config) -> dict:
    """The constructor arguments every trainer factory (sft.py, grpo.py, preserve.py) passes the same way."""
    return dict(model=model, processing_class=tokenizer, callbacks=list(callbacks), peft_config=peft_config)


def common_args(config: TrainConfig, method: str, output_dir: Path, progress: bool = False) -> dict:
    """Arguments shared by ``SFTConfig`` and ``GRPOConfig``."""
    return dict(
        output_dir=str(output_dir),
        max_steps=config.steps,
        per_device_train_batch_size=config.per_device_batch(method, world_size()),
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_schedule,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim="adamw_torch" if config.optimizer == "adamw" else "sgd",
        seed=config.seed,
        data_seed=config.seed,
        bf16=use_bf16(config),
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=config.gradient_checkpointing,
        logging_steps=1,
        logging_nan_inf_filter=False,
        save_strategy="steps",
        save_steps=config.steps,  # the CheckpointSchedule callback decides the actual steps
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )

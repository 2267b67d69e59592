"""Supervised fine-tuning through TRL's ``SFTTrainer``: loss on the answer tokens only.

Rows are TRL conversational prompt/completion pairs (see :mod:`.data`), so the
trainer applies the tokenizer's chat template and masks the prompt: the loss
covers the assistant turn, i.e. the answer and the template's end-of-turn
tokens. Rows are read in order (``train_sampling_strategy="sequential"``),
which is the order RL sees them in. Differs from the paper only in scale.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from trl import SFTConfig, SFTTrainer

from circuitdrift.models.prefix import unhooked
from circuitdrift.tasks.base import Task
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.data import sft_dataset
from circuitdrift.train.shared_prefix import (
    compact_lm_head,
    scored_positions,
    shared_prefix_backbone,
    trainer_takes_shared_prefix,
)
from circuitdrift.train.trainer_args import common_args, trainer_inputs


def sft_args(config: TrainConfig, output_dir: Path, progress: bool = False) -> SFTConfig:
    return SFTConfig(
        **common_args(config, "sft", output_dir, progress),
        completion_only_loss=True,
        max_length=config.sft.max_length,
        packing=False,
        shuffle_dataset=False,
        train_sampling_strategy="sequential",
    )


class SharedPrefixSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer without the arithmetic it repeats on a CPU (:mod:`.shared_prefix`): its fused LM head
    scores only the answer's positions on every device, as it does on CUDA, and where that is exact (one
    process, a text model without LoRA, logit scaling or activation checkpointing) the chat template's shared
    prefix is run once per batch. The same loss, up to float rounding."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared_prefix = trainer_takes_shared_prefix(self)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        plain = self.accelerator.unwrap_model(model)
        prefix = shared_prefix_backbone(plain, read=scored_positions(inputs)) \
            if self.shared_prefix and unhooked(plain) else contextlib.nullcontext()
        with compact_lm_head(), prefix:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)


def sft_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    *,
    config: TrainConfig,
    output_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
    peft_config=None,
    progress: bool = False,
    shared_prefix: bool = True,
) -> SFTTrainer:
    """An SFTTrainer on ``task``'s rows; ``shared_prefix=False``: TRL's own forward (the reference in tests)."""
    return (SharedPrefixSFTTrainer if shared_prefix else SFTTrainer)(
        args=sft_args(config, output_dir, progress),
        train_dataset=sft_dataset(task, config),
        **trainer_inputs(model, tokenizer, callbacks, peft_config),
    )

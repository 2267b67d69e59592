"""Supervised fine-tuning through TRL's ``SFTTrainer``: loss on the answer tokens only.

Rows are TRL conversational prompt/completion pairs (see :mod:`.data`), so the
trainer applies the tokenizer's chat template and masks the prompt: the loss
covers the assistant turn, i.e. the answer and the template's end-of-turn
tokens. Rows are read in order (``train_sampling_strategy="sequential"``),
which is the order RL sees them in. Differs from the paper only in scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from trl import SFTConfig, SFTTrainer

from circuitdrift.tasks.base import Task
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.data import sft_dataset
from circuitdrift.train.trainer_args import common_args


def sft_args(config: TrainConfig, output_dir: Path, progress: bool = False) -> SFTConfig:
    return SFTConfig(
        **common_args(config, "sft", output_dir, progress),
        completion_only_loss=True,
        max_length=config.sft.max_length,
        packing=False,
        shuffle_dataset=False,
        train_sampling_strategy="sequential",
    )


def sft_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    config: TrainConfig,
    output_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
    peft_config=None,
    progress: bool = False,
) -> SFTTrainer:
    return SFTTrainer(
        model=model,
        args=sft_args(config, output_dir, progress),
        train_dataset=sft_dataset(task, config),
        processing_class=tokenizer,
        callbacks=list(callbacks),
        peft_config=peft_config,
    )

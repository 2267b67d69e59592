"""The training configuration shared by SFT and RL, so their budgets match by construction.

One :class:`TrainConfig` drives both methods: the same prompts, in the same
order, for the same number of optimizer steps, with the same learning rate,
schedule, batch size and seed. Method-specific knobs live in the ``sft`` and
``rl`` sections. Defaults follow docs/methods.md §6 (AdamW, weight decay 0,
constant-with-warmup, Dr. GRPO loss, beta 0); sizes default to something a
CPU can run and are meant to be set per experiment.

A config file is YAML or JSON; unknown keys and out-of-range values are input
errors that name the key path (``rl.num_generations``) and the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from circuitdrift.engine import config as engine_config
from circuitdrift.errors import InputError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraSettings(_Section):
    """LoRA through PEFT; checkpoints hold the adapter merged into the base weights."""

    r: int = Field(16, ge=1, description="adapter rank")
    alpha: int = Field(32, ge=1, description="scaling numerator (lora_alpha)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter input")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt, or 'all-linear'"
    )


class SFTSettings(_Section):
    """Supervised fine-tuning on (prompt, answer) pairs, loss on the answer only."""

    max_length: int = Field(1024, ge=8, description="truncate prompt+completion to this many tokens")


class RLSettings(_Section):
    """GRPO through TRL. The reward is ``Task.reward``: the grader that measures accuracy."""

    num_generations: int = Field(8, ge=2, description="group size G: completions sampled per prompt")
    num_iterations: int = Field(1, ge=1, description="mu: optimizer steps taken on each generation batch")
    loss_type: Literal["dr_grpo", "grpo", "dapo", "bnpo"] = Field(
        "dr_grpo", description="TRL loss aggregation; dr_grpo normalises by a constant (no length bias)"
    )
    scale_rewards: Literal["none", "group", "batch"] = Field(
        "none", description="divide advantages by the reward std; Dr. GRPO does not ('none')"
    )
    beta: float = Field(0.0, ge=0.0, description="KL penalty to the base model; 0 loads no reference model")
    epsilon: float = Field(0.2, gt=0.0, lt=1.0, description="PPO clip range")
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature of the rollouts")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling of the rollouts")
    max_completion_length: int = Field(16, ge=1, description="tokens generated per rollout at most")
    use_vllm: bool = Field(False, description="generate rollouts with vLLM (TRL's colocate mode; the vllm extra, "
                           "a CUDA GPU)")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0.0, lt=1.0,
                                               description="share of GPU memory vLLM may take beside training")


class TrainConfig(BaseModel):
    """Everything that decides a fine-tuning run, for either method.

    ``prompts_per_step`` is the global batch in prompts: SFT trains on that many
    (prompt, answer) pairs per optimizer step; RL samples ``rl.num_generations``
    completions for each of them. With ``rl.num_iterations`` = mu > 1, RL takes
    mu optimizer steps on each batch of rollouts, and SFT repeats each prompt
    block mu times, so both still see the same prompts at every step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(100, ge=1, description="optimizer steps")
    prompts_per_step: int = Field(16, ge=1, description="global batch size, in prompts")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps (divides prompts_per_step)")
    learning_rate: float = Field(1e-5, gt=0.0, le=1.0, description="peak learning rate (AdamW)")
    lr_schedule: Literal["constant_with_warmup", "cosine", "constant", "linear"] = Field(
        "constant_with_warmup", description="learning-rate schedule after warmup"
    )
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="AdamW (torch), or plain SGD (no momentum)")
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    seed: int = Field(0, ge=0, description="seeds the prompt order, initialisation of adapters and sampling")
    train_split: str = Field("train", description="task split the training prompts come from")
    train_examples: int | None = Field(None, ge=1, description="use the first N examples of the split (all if unset)")
    checkpoint_steps: list[int] = Field(
        default_factory=list, description="steps to checkpoint; 0 (the base) and the last step are always added"
    )
    checkpoint_every: int | None = Field(None, ge=1, description="also checkpoint every N steps")
    bf16: bool | None = Field(None, description="bf16 mixed precision; unset = on when a bf16-capable GPU is used")
    gradient_checkpointing: bool = Field(False, description="activation checkpointing (GPU memory saver)")
    lora: LoraSettings | None = Field(None, description="train a LoRA adapter instead of all weights")
    sft: SFTSettings = Field(default_factory=SFTSettings)
    rl: RLSettings = Field(default_factory=RLSettings)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.prompts_per_step % self.grad_accum:
            raise ValueError(
                f"prompts_per_step ({self.prompts_per_step}) must be divisible by grad_accum ({self.grad_accum})"
            )
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) exceeds steps ({self.steps})")
        for step in self.checkpoint_steps:
            if not 0 <= step <= self.steps:
                raise ValueError(f"checkpoint step {step} is outside 0..steps ({self.steps})")
        mu = self.rl.num_iterations
        if mu > 1 and any(step % mu for step in self.schedule()):
            raise ValueError(
                f"with rl.num_iterations = {mu}, checkpoint steps and steps must be multiples of {mu} "
                "(a checkpoint inside a rollout batch cannot resume exactly)"
            )
        return self

    def schedule(self) -> list[int]:
        """Sorted checkpoint steps, always including 0 (the base model) and the final step."""
        steps = {0, self.steps, *self.checkpoint_steps}
        if self.checkpoint_every:
            steps.update(range(0, self.steps + 1, self.checkpoint_every))
        return sorted(steps)

    def per_device_batch(self, method: str, world_size: int = 1) -> int:
        """Rows per device per micro-step: prompts for SFT, completions for RL."""
        rows = self.prompts_per_step * (self.rl.num_generations if method == "rl" else 1)
        per_step = self.grad_accum * world_size
        if rows % per_step:
            raise InputError(
                f"prompts_per_step ({self.prompts_per_step}) is not divisible by grad_accum x processes "
                f"({self.grad_accum} x {world_size})"
            )
        return rows // per_step


def load_train_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML/JSON file (or defaults), with keyword overrides on top."""
    if path is None:
        return parse_train_config({k: v for k, v in overrides.items() if v is not None}, "defaults")
    return engine_config.load_settings(TrainConfig, Path(path), empty_ok=True, overrides=overrides)


def parse_train_config(data: dict, source: str = "config") -> TrainConfig:
    """Validate a mapping; the first problem is reported as ``source: key.path: message``."""
    return engine_config.parse_settings(TrainConfig, data, source)

"""How a checkpoint is measured: one settings object for ``circuitdrift eval`` and ``circuitdrift run``.

It is the ``eval:`` section of the experiment config and the options of
``eval``, with the same defaults, so the two commands measure a checkpoint the
same way. The defaults are the ones the shipped runs were measured with.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LmEvalSettings(BaseModel):
    """LM Evaluation Harness benchmarks measured at every checkpoint, base included (RL's Razor's forgetting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(min_length=1, description="harness task names (hellaswag, truthfulqa_mc2, ...)")
    limit: int | None = Field(100, ge=1, description="examples per listed task, in all: a group task (mmlu) "
                              "spreads them over its subtasks, ceil(N / k) each (None: all)")
    include_path: str | None = Field(None, description="folder of the harness's YAML task files (local tasks)")
    apply_chat_template: bool = Field(False, description="wrap each question in the model's chat template "
                                      "(the harness's default is off; docs/real-models.md)")


class MeasureSettings(BaseModel):
    """Per-checkpoint measurements (docs/methods.md §7); the sampled KL samples and scores at one temperature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: str = Field("test", description="held-out split for every measurement")
    selection_split: str = Field(
        "validation", description="split whose target accuracy chooses learning rates and matched levels "
        "(circuitdrift run); every reported number stays on `split`")
    target_n: int = Field(200, ge=1, description="target-task examples")
    probe_n: int = Field(100, ge=1, description="examples per probe for accuracy")
    max_new_tokens: int = Field(4, ge=1, description="greedy tokens per target-task prompt")
    kl_samples: int = Field(200, ge=1)
    kl_temperature: float = Field(1.0, gt=0.0, description="sampled KL: both models sampled and scored at it "
                                  "(1: the true forward KL)")
    kl_top_p: float = Field(1.0, ge=1.0, le=1.0, description="must be 1: a truncated distribution's KL is not "
                            "finite in general (evaluate/kl.py)")
    kl_max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(64, ge=1)
    exact_kl: bool = Field(True, description="also the exact KL of the answer-position distribution (no sampling)")
    logprob_drift: bool = Field(True, description="probe answer log-probability drift from the base (nats)")
    lm_eval: LmEvalSettings | None = Field(None, description="LM-Eval benchmarks per checkpoint (the lmeval extra)")

"""The checkpoint trajectory: step 0 (the base), the configured steps, resume, and the NaN guard.

Every checkpoint the analysis reads is ``out_dir/checkpoint-<step>``, a Hugging
Face model folder (config, safetensors, tokenizer). Full fine-tuning lets the
Trainer write them directly (they also hold the optimizer and RNG state that
resuming needs). LoRA runs keep the Trainer's adapter checkpoints under
``out_dir/adapter/`` and export each one merged into the base weights.

A checkpoint counts as complete once ``trainer_state.json`` is in it: the
Trainer writes that file last, so a run killed while saving resumes from the
checkpoint before.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable
from pathlib import Path

from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"


def checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / f"{PREFIX}{step}"


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder, or None for anything else."""
    suffix = path.name.removeprefix(PREFIX)
    return int(suffix) if path.name.startswith(PREFIX) and suffix.isdigit() else None


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete model folders ``checkpoint-<step>``, sorted by step.

    A Trainer checkpoint is complete once its ``trainer_state.json`` exists; the
    folders circuitdrift writes itself (step 0, merged LoRA exports) appear only
    whole, through a rename.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [
        (step, path)
        for path in out_dir.iterdir()
        if path.is_dir() and (step := checkpoint_step(path)) is not None and _is_complete(path)
    ]
    return [path for _, path in sorted(found)]


def _is_complete(path: Path) -> bool:
    has_model = (path / "config.json").is_file() and any(path.glob("*.safetensors"))
    written_by_trainer = (path / "training_args.bin").exists()
    return has_model and (not written_by_trainer or (path / STATE_FILE).is_file())


def last_resumable(state_dir: str | Path) -> Path | None:
    """The latest complete Trainer checkpoint (step > 0, ``trainer_state.json`` written), if any."""
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return None
    complete = [
        (step, path)
        for path in state_dir.iterdir()
        if (step := checkpoint_step(path)) and (path / STATE_FILE).is_file()
    ]
    return max(complete)[1] if complete else None


def list_adapters(adapter_dir: str | Path) -> list[Path]:
    """Complete LoRA adapter checkpoints (``adapter_config.json`` and ``trainer_state.json`` written), by step."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        return []
    found = [(step, path) for path in adapter_dir.iterdir()
             if (step := checkpoint_step(path)) is not None and (path / "adapter_config.json").is_file()
             and (path / STATE_FILE).is_file()]
    return [path for _, path in sorted(found)]


def save_model_folder(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> Path:
    """Write a model folder through a temporary name, so a kill never leaves a half-written one."""
    if path.is_dir() and (path / "config.json").is_file():
        return path
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


class CheckpointSchedule(TrainerCallback):
    """Save exactly at the configured steps (the Trainer's own rule saves every ``save_steps``)."""

    def __init__(self, steps: Iterable[int]):
        self.steps = {s for s in steps if s > 0}

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        control.should_save = state.global_step in self.steps
        return control


class DivergenceGuard(TrainerCallback):
    """Stop at the first non-finite loss or gradient norm, before that step is saved.

    Needs ``logging_steps=1`` and ``logging_nan_inf_filter=False`` (the Trainer
    otherwise replaces a NaN loss by the running mean). The caller raises
    :class:`~circuitdrift.errors.TrainingDivergedError` when ``diverged_at`` is set.
    """

    WATCHED = ("loss", "grad_norm")

    def __init__(self) -> None:
        self.diverged_at: int | None = None
        self.what = ""

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        for key in self.WATCHED:
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                self.diverged_at = state.global_step
                self.what = f"{key} = {value}"
                control.should_training_stop = True
                control.should_save = False
                break
        return control


class MergedExport(TrainerCallback):
    """LoRA runs: after each adapter checkpoint, write the adapter merged into the base as a model folder."""

    def __init__(self, base_dir: Path, out_dir: Path):
        self.base_dir = base_dir
        self.out_dir = out_dir

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if state.is_world_process_zero:
            adapter = Path(args.output_dir) / f"{PREFIX}{state.global_step}"
            export_merged(self.base_dir, adapter, checkpoint_dir(self.out_dir, state.global_step))
        return control


def export_merged(base_dir: Path, adapter_dir: Path, path: Path) -> Path:
    """Load the base, apply the adapter, merge it and save a plain model folder."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype="float32")
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    return save_model_folder(merged, AutoTokenizer.from_pretrained(base_dir), path)

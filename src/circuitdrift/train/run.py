"""``train(method, model, task, config, out_dir)``: one fine-tuning run and its checkpoint trajectory.

The run writes ``out_dir/checkpoint-<step>`` for step 0 (the base model) and
every configured step, ``out_dir/train_config.json`` (what was asked) and, once
finished, ``out_dir/train_summary.json`` (the Trainer's per-step log; for RL also
``rollouts``, the :class:`~.monitor.RolloutMonitor` summary: reward, groups with
reward variance and answer spread per window of rollout batches, and the first
collapse onto one answer, counted from ``from_step`` when the run was resumed, and
``rollout_sampling``, every sampling parameter of the rollouts). Started
again on the same folder it resumes from its last complete checkpoint, or
returns at once when the run already finished; a folder that holds a run with
a different configuration is refused.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Literal

from accelerate import PartialState
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from circuitdrift.errors import InputError, TrainingDivergedError
from circuitdrift.io import write_json
from circuitdrift.models.load import load_model
from circuitdrift.tasks.base import Task
from circuitdrift.tasks.registry import resolve_task
from circuitdrift.tasks.science import MultipleChoiceTask
from circuitdrift.train.checkpoints import (
    CheckpointSchedule,
    DivergenceGuard,
    MergedExport,
    checkpoint_dir,
    checkpoint_step,
    last_resumable,
    list_adapters,
    list_checkpoints,
    save_model_folder,
)
from circuitdrift.train.config import TrainConfig, load_train_config, parse_train_config
from circuitdrift.train.grpo import grpo_trainer, rollout_sampling
from circuitdrift.train.monitor import ROLLOUTS_FILE, MonitorCheckpoint, RolloutMonitor
from circuitdrift.train.precision import master_weights
from circuitdrift.train.preserve import Preservation, preserve_trainer
from circuitdrift.train.sft import sft_trainer

Method = Literal["sft", "sft-word", "rl", "sft-preserve"]
METHODS = ("sft", "sft-word", "rl", "sft-preserve")
WORD_SFT = "sft-word"  # SFT on the correct option's word instead of its letter (multiple-choice tasks)
# each method's trainer factory; they share their arguments (trainer_args.py) and take one of their own at most
TRAINERS = {"sft": sft_trainer, WORD_SFT: sft_trainer, "rl": grpo_trainer, "sft-preserve": preserve_trainer}

CONFIG_FILE = "train_config.json"
SUMMARY_FILE = "train_summary.json"


def train(
    method: Method,
    model: str | os.PathLike | PreTrainedModel,
    task: str | os.PathLike | Task,
    config: TrainConfig | dict | str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    progress: bool = False,
    preservation: Preservation | None = None,
    adapter_only: bool = False,
) -> list[Path]:
    """Fine-tune ``model`` on ``task`` with SFT, RL or circuit-preserving SFT; return the checkpoints, step 0 first.

    ``sft-word``: SFT on the correct option's word, not its letter (multiple choice only): the off-policy arm.
    ``model``: a name/folder for :func:`~circuitdrift.models.load.load_model` or a loaded model (trained in
    place; pass ``tokenizer``); ``task``: a name/JSONL path (its ``config.train_split``) or a :class:`Task`;
    ``config``: a :class:`TrainConfig`, a mapping, a YAML/JSON path, or None for the defaults.
    ``progress`` shows the Trainer's bar and log; ``preservation`` (``sft-preserve`` only): the heads and lambda.
    ``adapter_only`` (LoRA only): keep only ``out_dir/adapter/checkpoint-<step>``, no step-0 base copy and no
    merged export (a 7B base copied per transfer student fills a disk), and return those adapter folders.
    """
    config = _checked(method, config, preservation, adapter_only)
    out_dir = Path(out_dir)
    model, tokenizer, model_name = _as_model(model, tokenizer)
    task = _as_task(task, config, tokenizer)
    task = word_labelled(task) if method == WORD_SFT else task
    processes = PartialState()  # under `accelerate launch`, files are written by the main process only
    claim = partial(_claim, out_dir, method, model_name, task.name, config, preservation)
    with processes.main_process_first():
        if processes.is_main_process:
            claim()
            if not adapter_only:
                save_model_folder(model, tokenizer, checkpoint_dir(out_dir, 0))
    claim()  # every process checks the folder's record
    done = (lambda: list_adapters(out_dir / "adapter")) if adapter_only else (lambda: list_checkpoints(out_dir))
    if (out_dir / SUMMARY_FILE).is_file():
        return done()
    config = master_weights(model, config)  # float32 weights, bf16 autocast when loaded in bf16 (train/precision.py)
    state_dir = out_dir / "adapter" if config.lora else out_dir
    guard = DivergenceGuard()
    extra: list[TrainerCallback] = [CheckpointSchedule(config.schedule()), guard] + (
        [MergedExport(checkpoint_dir(out_dir, 0), out_dir)] if config.lora and not adapter_only else [])
    resume = last_resumable(state_dir)
    from_step = (checkpoint_step(resume) or 0) if resume is not None else 0  # 0: a fresh run
    monitor = _rollout_monitor(method, task, config, resume=resume, from_step=from_step, callbacks=extra)
    own = {"rl": {"monitor": monitor}, "sft-preserve": {"preservation": preservation}}.get(method, {})
    model.train()
    trainer = _fit(TRAINERS[method](model, tokenizer, task, config=config, output_dir=state_dir,
                                    callbacks=[*extra, *callbacks], peft_config=_peft_config(config),
                                    progress=progress, **own), progress=progress, resume=resume)
    _stop_if_diverged(guard, method, out_dir)
    if trainer.state.global_step < config.steps:  # a callback asked to stop early: resumable, nothing finished
        return done()
    if processes.is_main_process:
        write_json(out_dir / SUMMARY_FILE, _summary(method, config, trainer, preservation=preservation,
                                                    monitor=monitor, from_step=from_step))
    processes.wait_for_everyone()
    return done()


def _fit(trainer, *, progress: bool, resume):
    """Train (from ``resume`` when given); without ``progress`` stdout stays the command's JSON."""
    if not progress:
        trainer.remove_callback(PrinterCallback)  # the log is in the summary
    trainer.train(resume_from_checkpoint=_str_or_none(resume))
    return trainer


def _checked(method: str, config, preservation: Preservation | None, adapter_only: bool) -> TrainConfig:
    """The method and its options checked, and the config as a TrainConfig, before any model is loaded."""
    if method not in METHODS:
        raise InputError(f"method '{method}': use one of {', '.join(METHODS)}")
    if (method == "sft-preserve") != (preservation is not None):
        raise InputError("sft-preserve needs the heads to preserve, and only sft-preserve takes them")
    config = _as_config(config)
    if adapter_only and config.lora is None:
        raise InputError("train: adapter_only needs a LoRA config (lora: ...)")
    return config


def _rollout_monitor(method: str, task: Task, config: TrainConfig, *, resume, from_step: int,
                     callbacks: list[TrainerCallback]) -> RolloutMonitor | None:
    """RL's rollout monitor (None for SFT), resumed from its checkpoint; adds the callback that saves it."""
    if method != "rl":
        return None
    # checkpoints fall on multiples of mu, so a resumed run starts on a fresh rollout batch
    monitor = RolloutMonitor(task, config.rl.num_generations, first_batch=from_step // config.rl.num_iterations)
    callbacks.append(MonitorCheckpoint(monitor))  # each checkpoint keeps the batches a resume takes back
    if resume is not None:
        monitor.restore(Path(resume) / ROLLOUTS_FILE)
    return monitor


def _stop_if_diverged(guard: DivergenceGuard, method: str, out_dir: Path) -> None:
    if guard.diverged_at is not None:
        done = list_checkpoints(out_dir)
        raise TrainingDivergedError(
            f"{method} run in {out_dir}: {guard.what} at step {guard.diverged_at}; training stopped, "
            f"last good checkpoint: {done[-1] if done else 'none'} (lower the learning rate or check the data)"
        )


def _summary(method: str, config: TrainConfig, trainer, *, preservation: Preservation | None,
             monitor: RolloutMonitor | None, from_step: int) -> dict:
    """train_summary.json: the log history, the preserved heads and the rollout monitor's windows."""
    summary = {"method": method, "steps": config.steps, "log_history": trainer.state.log_history}
    if preservation is not None:
        summary["preserve"] = preservation.record()
    if monitor is not None:
        # about ten windows of rollout batches (a batch serves mu steps); a resumed run takes back the batches
        # its checkpoint saved; under several processes only the main process's share of each batch
        window = max(1, math.ceil(config.steps / config.rl.num_iterations) // 10)
        summary["rollouts"] = {"from_step": from_step, **monitor.summary(window=window)}
        summary["rollout_sampling"] = rollout_sampling(config).to_dict()
    return summary


def train_sft(model, task, config=None, out_dir="runs/train/sft", **kwargs) -> list[Path]:
    """SFT with TRL's SFTTrainer; see :func:`train`."""
    return train("sft", model, task, config, out_dir, **kwargs)


def train_rl(model, task, config=None, out_dir="runs/train/rl", **kwargs) -> list[Path]:
    """RL with TRL's GRPOTrainer (Dr. GRPO loss, beta 0 by default); see :func:`train`."""
    return train("rl", model, task, config, out_dir, **kwargs)


def train_sft_preserve(model, task, preservation: Preservation, config=None, out_dir="runs/train/sft-preserve",
                       **kwargs) -> list[Path]:
    """Circuit-preserving SFT (TRL's SFTTrainer plus the head penalty, train/preserve.py); see :func:`train`."""
    return train("sft-preserve", model, task, config, out_dir, preservation=preservation, **kwargs)


def training_log(out_dir: str | os.PathLike) -> list[dict]:
    """The per-step log of a finished run (loss, reward, frac_reward_zero_std, ...)."""
    path = Path(out_dir) / SUMMARY_FILE
    if not path.is_file():
        raise InputError(f"run '{out_dir}': not finished (no {SUMMARY_FILE})")
    return json.loads(path.read_text())["log_history"]


def word_labelled(task: Task) -> Task:
    """``task`` with the correct option's word as its SFT label; a task without options is refused."""
    if not isinstance(task, MultipleChoiceTask):
        raise InputError(f"method '{WORD_SFT}': task '{task.name}' is not multiple choice (no option words to "
                         "train on); use sft")
    return task.with_label("word")


def _as_config(config) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return parse_train_config(config)
    return load_train_config(config)


def _as_model(model, tokenizer):
    if isinstance(model, PreTrainedModel):
        if tokenizer is None:
            raise InputError("train: a loaded model needs its tokenizer (pass tokenizer=...)")
        return model, tokenizer, getattr(model.config, "_name_or_path", "") or type(model).__name__

    loaded, loaded_tokenizer = load_model(model, dtype="float32", device="cpu")
    return loaded, tokenizer or loaded_tokenizer, str(model)


def _as_task(task, config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> Task:
    if isinstance(task, Task):
        return task.subset(config.train_examples)

    return resolve_task(task, split=config.train_split, n=config.train_examples, seed=config.seed,
                        tokenizer=tokenizer)


def _claim(out_dir: Path, method: str, model_name: str, task_name: str, config: TrainConfig,
           preservation: Preservation | None = None) -> None:
    """Record what this folder holds; refuse to mix two different runs in one folder."""
    record = {"method": method, "model": model_name, "task": task_name, "config": config.model_dump(mode="json")}
    if preservation is not None:
        record["preserve"] = {"heads": list(preservation.heads), "lambda": preservation.lam}
    path = out_dir / CONFIG_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != record:
            changed = sorted(k for k in record if previous.get(k) != record[k])
            raise InputError(
                f"--out {out_dir}: holds a run with a different {', '.join(changed)}; use a new folder"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, record)


def _peft_config(config: TrainConfig):
    if config.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def _str_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)

"""CLI: ``circuitdrift train sft|sft-word|rl|sft-preserve``; each calls one plain function.

Mounted by ``circuitdrift.cli`` with ``register(app)``. Bad input raises
:class:`~circuitdrift.errors.InputError` (the CLI exits 2), a diverged loss
:class:`~circuitdrift.errors.TrainingDivergedError` (exit 1). Under
``accelerate launch -m circuitdrift train ...`` the same commands train on
every process; only the main process prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from circuitdrift.circuits.cli_options import MODEL_HELP, TASK_HELP
from circuitdrift.io import read_json
from circuitdrift.train.config import load_train_config
from circuitdrift.train.preservation import DEFAULT_LAMBDA, Preservation, heads_from_json
from circuitdrift.train.run import train


def register(app: typer.Typer) -> None:
    """Add the ``train`` sub-app (``sft``, ``sft-word``, ``rl``, ``sft-preserve``) to ``app``."""
    train_app = typer.Typer(help="Fine-tune a model with SFT or RL (GRPO), keeping a checkpoint trajectory.",
                            no_args_is_help=True)
    train_app.command("sft", help="Supervised fine-tuning (TRL SFTTrainer), loss on the answer only.")(
        _train_command("sft"))
    train_app.command("sft-word", help="SFT whose label is the correct option's word, not its letter (multiple-"
                      "choice tasks): the off-policy arm, a label the base model finds far less likely.")(
        _train_command("sft-word"))
    train_app.command("rl", help="RL with GRPO / Dr. GRPO (TRL GRPOTrainer); reward = the task's grader.")(
        _train_command("rl"))
    train_app.command("sft-preserve", help="SFT plus lambda x the squared drift of the given heads' outputs from "
                      "the base model (circuit-preserving SFT).")(_preserve_command)
    app.add_typer(train_app, name="train")


def _train(method: str, model: str, task: str, *, config: Path | None, out: Path, steps: int | None,
           learning_rate: float | None, seed: int | None, progress: bool,
           preservation: Preservation | None = None) -> None:

    cfg = load_train_config(config, steps=steps, learning_rate=learning_rate, seed=seed)
    checkpoints = train(method, model, task, cfg, out, progress=progress, preservation=preservation)
    if int(os.environ.get("RANK", "0")) == 0:
        result = {"method": method, "checkpoints": [str(c) for c in checkpoints]}
        if preservation is not None:
            result["preserve"] = preservation.record()
        typer.echo(json.dumps(result, indent=2))


def _preserve_command(
    *,
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    heads: Path = typer.Option(..., "--heads", help="heads/dcm circuit file, dcv result (its vulnerable heads) "
                               "or a JSON list of 'L<l>.H<h>'"),
    out: Path = typer.Option(..., "--out", help="run folder: checkpoint-<step>/ for every checkpoint"),
    lam: float = typer.Option(DEFAULT_LAMBDA, "--lambda", help="weight of the head-drift penalty"),
    config: Path | None = typer.Option(None, "--config", help="YAML/JSON TrainConfig"),
    steps: int | None = typer.Option(None, "--steps", help="override config: optimizer steps"),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="override config: learning rate"),
    seed: int | None = typer.Option(None, "--seed", help="override config: seed"),
    progress: bool = typer.Option(False, "--progress/--quiet", help="show the Trainer's progress bar"),
) -> None:
    names = heads_from_json(read_json(heads, "heads file"), str(heads))
    preservation = Preservation(tuple(names), lam, source={"file": str(heads)})
    _train("sft-preserve", model, task, config=config, out=out, steps=steps, learning_rate=learning_rate, seed=seed,
           progress=progress, preservation=preservation)


def _train_command(method: str):
    """The ``train <method>`` command: the same options for every method, so their budgets match."""

    def command(
        *,
        model: str = typer.Option(..., "--model", help=MODEL_HELP),
        task: str = typer.Option(..., "--task", help=TASK_HELP),
        out: Path = typer.Option(..., "--out", help="run folder: checkpoint-<step>/ for every checkpoint"),
        config: Path | None = typer.Option(None, "--config", help="YAML/JSON TrainConfig"),
        steps: int | None = typer.Option(None, "--steps", help="override config: optimizer steps"),
        learning_rate: float | None = typer.Option(None, "--learning-rate", help="override config: learning rate"),
        seed: int | None = typer.Option(None, "--seed", help="override config: seed"),
        progress: bool = typer.Option(False, "--progress/--quiet", help="show the Trainer's progress bar"),
    ) -> None:
        _train(method, model, task, config=config, out=out, steps=steps, learning_rate=learning_rate, seed=seed,
               progress=progress)

    command.__name__ = f"train_{method}"
    return command

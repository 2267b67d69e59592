"""What the commands share: the option vocabulary, loading by name, and JSON output."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from circuitdrift.circuits.vocabulary import ABLATIONS, CIRCUIT_METHODS, CMAP_METHODS, DCV_THRESHOLDS, METRICS
from circuitdrift.errors import InputError
from circuitdrift.io import write_json
from circuitdrift.models.load import load_model, load_tokenizer
from circuitdrift.tasks.registry import resolve_task

MODEL_HELP = "hub id, local model folder, or 'organism'"  # the lower-case help texts of `train` and `eval`
TASK_HELP = "built-in task name (science-qa, ...) or a JSONL task file"


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A typer choice type whose values are circuits/vocabulary.py's (member names: '-' -> '_')."""
    return Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


Method = _choices("Method", CIRCUIT_METHODS)
CmapMethod = _choices("CmapMethod", CMAP_METHODS)
Metric = _choices("Metric", METRICS)
Ablation = _choices("Ablation", ABLATIONS)
Threshold = _choices("Threshold", DCV_THRESHOLDS)


class Dtype(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


ModelArg = Annotated[str, typer.Argument(help="Hub id, a folder saved with save_pretrained, or 'organism'.")]
TaskArg = Annotated[str, typer.Argument(help="Built-in task name or a JSONL file (clean, corrupt, answer).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the JSON result here (default: stdout).")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="auto, cpu, cuda, or auto-map (device_map=auto: layers spread over the GPUs).")]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Examples per forward pass.")]
NOpt = Annotated[int | None, typer.Option("--n", min=1, help="Use the first N examples (default: all).")]
SplitOpt = Annotated[str, typer.Option("--split", help="Split of a built-in task.")]
AttnOpt = Annotated[str, typer.Option("--attn", help="Attention kernel, the same for every model compared.")]
PickleOpt = Annotated[bool, typer.Option("--allow-pickle", help="Allow loading pickled .bin weights.")]
RemoteOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Run the model repo's own code.")]


def load(name: str, device: str, dtype: Dtype, attn: str, allow_pickle: bool = False, remote: bool = False):
    """(model, tokenizer) by name, with the command's device, dtype and attention kernel."""
    return load_model(name, dtype=dtype.value, device=device, attn_implementation=attn,
                      trust_remote_code=remote, allow_pickle=allow_pickle)


def task_for(spec: str, split: str, n: int | None, model: str, remote: bool = False):
    """The task, built for ``model``'s tokenizer where the task needs one (chat template, single tokens)."""
    return resolve_task(spec, split=split, n=n, tokenizer=load_tokenizer(model, trust_remote_code=remote))


def check_output_path(out: Path | None) -> None:
    """Fail before any work when the output cannot be written."""
    if out is None:
        return
    if out.exists() and out.is_dir():
        raise InputError(f"--out {out}: is a folder, expected a file path")
    parent = out.parent if str(out.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not _writable(probe):
        raise InputError(f"--out {out}: cannot write to {probe}")


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def emit(result: dict, out: Path | None) -> None:
    if out is None:
        typer.echo(json.dumps(result, indent=2))
    else:
        write_json(out, result)
        typer.echo(f"wrote {out}", err=True)

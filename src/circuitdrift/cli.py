"""The ``circuitdrift`` command line: one subcommand per stage, each a thin call into a plain function.

Bad input prints one line and exits 2; a runtime failure exits 1; ``--debug``
(anywhere on the line) shows the traceback. Results are JSON, written
atomically to ``--out`` or printed to stdout.
"""

from __future__ import annotations

import json
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated

import click
import typer

from circuitdrift.errors import CircuitDriftError, InputError

app = typer.Typer(
    name="circuitdrift",
    help="What did fine-tuning do to this model's circuits and capabilities?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Method(str, Enum):
    exact = "exact"
    attribution = "attribution"
    eap_ig = "eap-ig"
    prune = "prune"


class CmapMethod(str, Enum):
    exact = "exact"
    attribution = "attribution"


class Metric(str, Enum):
    prob = "prob"
    logit_diff = "logit-diff"
    logprob = "logprob"
    accuracy = "accuracy"


class Ablation(str, Enum):
    corrupt = "corrupt"
    zero = "zero"
    mean = "mean"


class Dtype(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


ModelArg = Annotated[str, typer.Argument(help="Hub id, a folder saved with save_pretrained, or 'organism'.")]
TaskArg = Annotated[str, typer.Argument(help="Built-in task name or a JSONL file (clean, corrupt, answer).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the JSON result here (default: stdout).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Examples per forward pass.")]
NOpt = Annotated[int | None, typer.Option("--n", min=1, help="Use the first N examples (default: all).")]
SplitOpt = Annotated[str, typer.Option("--split", help="Split of a built-in task.")]
AttnOpt = Annotated[str, typer.Option("--attn", help="Attention kernel, the same for every model compared.")]
PickleOpt = Annotated[bool, typer.Option("--allow-pickle", help="Allow loading pickled .bin weights.")]
RemoteOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Run the model repo's own code.")]


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    """circuitdrift: head-level circuits, SFT vs RL, differential circuit vulnerability."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress display; keep stderr to one line on errors
    hf_logging.set_verbosity_error()


def _load(name: str, device: str, dtype: Dtype, attn: str, allow_pickle: bool = False, remote: bool = False):
    from circuitdrift.models.load import load_model

    return load_model(name, dtype=dtype.value, device=device, attn_implementation=attn,
                      trust_remote_code=remote, allow_pickle=allow_pickle)


def _task(spec: str, split: str, n: int | None, model: str, remote: bool = False):
    """The task, built for ``model``'s tokenizer where the task needs one (chat template, single tokens)."""
    from circuitdrift.models.load import load_tokenizer
    from circuitdrift.tasks.registry import resolve_task

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
    import os

    return os.access(folder, os.W_OK | os.X_OK)


def emit(result: dict, out: Path | None) -> None:
    from circuitdrift.io import write_json

    if out is None:
        typer.echo(json.dumps(result, indent=2))
    else:
        write_json(out, result)
        typer.echo(f"wrote {out}", err=True)


@app.command()
def heads(
    model: ModelArg,
    task: TaskArg,
    method: Annotated[Method, typer.Option("--method")] = Method.exact,
    metric: Annotated[Metric, typer.Option("--metric")] = Metric.prob,
    ablation: Annotated[Ablation, typer.Option("--ablation")] = Ablation.corrupt,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Circuit size (default: min(20, heads)).")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Circuit = heads scoring <= this.")] = None,
    ig_steps: Annotated[int, typer.Option("--ig-steps", min=1, help="EAP-IG integration steps.")] = 5,
    batch_size: BatchOpt = 16,
    n: NOpt = None,
    split: SplitOpt = "test",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.float32,
    attn: AttnOpt = "sdpa",
    allow_pickle: PickleOpt = False,
    trust_remote_code: RemoteOpt = False,
    out: OutOpt = None,
) -> None:
    """Score every attention head for TASK and pick the circuit."""
    from circuitdrift.analysis import heads_result

    check_output_path(out)
    the_task = _task(task, split, n, model, trust_remote_code)
    loaded, tokenizer = _load(model, device, dtype, attn, allow_pickle, trust_remote_code)
    emit(heads_result(loaded, tokenizer, the_task, model, method.value, metric.value, ablation.value, top_k,
                      threshold, batch_size, ig_steps), out)


@app.command()
def cmap(
    base: ModelArg,
    finetuned: Annotated[str, typer.Argument(help="The fine-tuned model (same layout and vocabulary).")],
    task: TaskArg,
    method: Annotated[CmapMethod, typer.Option("--method")] = CmapMethod.exact,
    metric: Annotated[Metric, typer.Option("--metric")] = Metric.prob,
    reverse: Annotated[bool, typer.Option("--reverse", help="Patch base heads into the fine-tuned model.")] = False,
    batch_size: BatchOpt = 16,
    n: NOpt = None,
    split: SplitOpt = "test",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.float32,
    attn: AttnOpt = "sdpa",
    allow_pickle: PickleOpt = False,
    trust_remote_code: RemoteOpt = False,
    out: OutOpt = None,
) -> None:
    """Cross-model activation patching: dF(h) of FINETUNED's heads inside BASE."""
    from circuitdrift.analysis import cmap_result

    check_output_path(out)
    the_task = _task(task, split, n, base, trust_remote_code)
    base_model, tokenizer = _load(base, device, dtype, attn, allow_pickle, trust_remote_code)
    ft_model, ft_tokenizer = _load(finetuned, device, dtype, attn, allow_pickle, trust_remote_code)
    emit(cmap_result(base_model, ft_model, tokenizer, the_task, base, finetuned, method.value, metric.value,
                     batch_size, ft_tokenizer, reverse), out)


@app.command()
def dcv(
    base: ModelArg,
    task: TaskArg,
    sft: Annotated[str, typer.Option("--sft", help="The SFT model.")],
    rl: Annotated[str, typer.Option("--rl", help="The RL model.")],
    tau: Annotated[float, typer.Option("--tau", help="Vulnerability threshold on V(h).")] = 0.1,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Circuit size (default: min(20, heads)).")] = None,
    method: Annotated[CmapMethod, typer.Option("--method", help="CMAP method.")] = CmapMethod.exact,
    circuit_method: Annotated[Method, typer.Option("--circuit-method")] = Method.exact,
    metric: Annotated[Metric, typer.Option("--metric")] = Metric.prob,
    ablation: Annotated[Ablation, typer.Option("--ablation", help="For circuit re-discovery.")] = Ablation.corrupt,
    batch_size: BatchOpt = 16,
    n: NOpt = None,
    split: SplitOpt = "test",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.float32,
    attn: AttnOpt = "sdpa",
    allow_pickle: PickleOpt = False,
    trust_remote_code: RemoteOpt = False,
    out: OutOpt = None,
) -> None:
    """Differential circuit vulnerability of BASE's heads under SFT and RL."""
    from circuitdrift.analysis import dcv_result

    if tau < 0:
        raise InputError(f"--tau {tau}: must be non-negative")
    check_output_path(out)
    the_task = _task(task, split, n, base, trust_remote_code)
    models, tokenizers = {}, {}
    for role, name in (("base", base), ("sft", sft), ("rl", rl)):
        models[role], tokenizers[role] = _load(name, device, dtype, attn, allow_pickle, trust_remote_code)
    emit(dcv_result(models["base"], models["sft"], models["rl"], tokenizers["base"], the_task,
                    {"base": base, "sft": sft, "rl": rl}, tau, top_k, method.value, circuit_method.value,
                    metric.value, ablation.value, batch_size, tokenizers), out)


@app.command()
def dcm(
    model: ModelArg,
    task: TaskArg,
    targets: Annotated[Path | None, typer.Option("--targets", help="JSON list: one target token per example "
                                                 "(default: each example's counter-answer).")] = None,
    lam: Annotated[float, typer.Option("--lambda", help="Weight of the mask-size penalty.")] = 0.1,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate of the mask logits.")] = 0.1,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Full-batch iterations.")] = 100,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    n: NOpt = None,
    split: SplitOpt = "test",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.float32,
    attn: AttnOpt = "sdpa",
    allow_pickle: PickleOpt = False,
    trust_remote_code: RemoteOpt = False,
    out: OutOpt = None,
) -> None:
    """Learn a mask per head (DCM): the heads whose counterfactual outputs produce the desideratum."""
    from circuitdrift.analysis import dcm_result
    from circuitdrift.io import read_json

    check_output_path(out)
    target_list = None
    if targets is not None:
        target_list = read_json(targets, "targets file")
        if not isinstance(target_list, list) or not all(isinstance(t, str) for t in target_list):
            raise InputError(f"{targets}: expected a JSON list of strings, one target per example")
    the_task = _task(task, split, n, model, trust_remote_code)
    loaded, tokenizer = _load(model, device, dtype, attn, allow_pickle, trust_remote_code)
    emit(dcm_result(loaded, tokenizer, the_task, model, target_list, lam, lr, steps, seed), out)


@app.command("faithfulness")
def faithfulness_cmd(
    model: ModelArg,
    task: TaskArg,
    circuit: Annotated[Path, typer.Option("--circuit", help="A `heads` output or a JSON list of heads.")],
    ablation: Annotated[Ablation, typer.Option("--ablation")] = Ablation.mean,
    n_random: Annotated[int, typer.Option("--n-random", min=0, help="Random circuits for the baseline.")] = 10,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    batch_size: BatchOpt = 32,
    n: NOpt = None,
    split: SplitOpt = "test",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.float32,
    attn: AttnOpt = "sdpa",
    allow_pickle: PickleOpt = False,
    trust_remote_code: RemoteOpt = False,
    out: OutOpt = None,
) -> None:
    """F(C|M)/F(M) of a circuit, against random circuits of the same size."""
    from circuitdrift.analysis import faithfulness_result
    from circuitdrift.circuits.scores import circuit_from_json
    from circuitdrift.io import read_json

    check_output_path(out)
    heads_list = circuit_from_json(read_json(circuit, "circuit file"), str(circuit))
    the_task = _task(task, split, n, model, trust_remote_code)
    loaded, tokenizer = _load(model, device, dtype, attn, allow_pickle, trust_remote_code)
    emit(faithfulness_result(loaded, tokenizer, the_task, heads_list, model, ablation.value, n_random, seed,
                             batch_size), out)


def _register_stage_commands() -> None:
    """Commands that live beside their stage's code."""
    import importlib

    for module in ("circuitdrift.organism.commands", "circuitdrift.train.commands",
                   "circuitdrift.pipeline.commands", "circuitdrift.report.commands"):
        try:
            importlib.import_module(module).register(app)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    _register_stage_commands()
    try:
        app(args=args, prog_name="circuitdrift", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return 2 if err.exit_code in (1, 2) else err.exit_code
    except CircuitDriftError as err:
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {err}", err=True)
        return err.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as err:  # a runtime failure: say what, exit 1
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {type(err).__name__}: {err}", err=True)
        return 1
    return 0


def run() -> None:
    sys.exit(main())

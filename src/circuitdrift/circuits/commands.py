"""CLI: ``heads``, ``cmap``, ``dcv``, ``dcm`` and ``faithfulness``; each calls one function of circuits/results.py.

Mounted by ``circuitdrift.cli`` with ``register(app)``. Bad input raises
:class:`~circuitdrift.errors.InputError` (the CLI exits 2). Results are JSON,
written atomically to ``--out`` or printed to stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from circuitdrift.circuits.cli_options import (
    Ablation,
    AttnOpt,
    BatchOpt,
    CmapMethod,
    DeviceOpt,
    Dtype,
    DtypeOpt,
    Method,
    Metric,
    ModelArg,
    NOpt,
    OutOpt,
    PickleOpt,
    RemoteOpt,
    SplitOpt,
    TaskArg,
    Threshold,
    check_output_path,
    emit,
    load,
    task_for,
)
from circuitdrift.circuits.discovery import CircuitSettings
from circuitdrift.circuits.results import (
    check_top_k,
    cmap_result,
    dcm_result,
    dcv_result,
    faithfulness_result,
    heads_result,
)
from circuitdrift.circuits.scores import circuit_from_json
from circuitdrift.circuits.vulnerability import check_tau
from circuitdrift.errors import InputError
from circuitdrift.io import read_json


def register(app: typer.Typer) -> None:
    """Add the circuit commands to ``app``, in the order ``--help`` lists them."""
    app.command()(heads)
    app.command()(cmap)
    app.command()(dcv)
    app.command()(dcm)
    app.command("faithfulness")(faithfulness_cmd)


def heads(
    *,
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

    check_output_path(out)
    the_task = task_for(task, split, n, model, trust_remote_code)
    loaded, tokenizer = load(model, device, dtype, attn, allow_pickle, trust_remote_code)
    settings = CircuitSettings(method=method.value, metric=metric.value, ablation=ablation.value,
                               top_k=check_top_k(loaded, top_k), batch_size=batch_size, ig_steps=ig_steps,
                               threshold=threshold)
    emit(heads_result(loaded, tokenizer, the_task, model_name=model, settings=settings), out)


def cmap(
    *,
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

    check_output_path(out)
    the_task = task_for(task, split, n, base, trust_remote_code)
    base_model, tokenizer = load(base, device, dtype, attn, allow_pickle, trust_remote_code)
    ft_model, ft_tokenizer = load(finetuned, device, dtype, attn, allow_pickle, trust_remote_code)
    emit(cmap_result(base_model, ft_model, tokenizer, the_task, base_name=base, finetuned_name=finetuned,
                     method=method.value,
                     metric=metric.value, batch_size=batch_size, finetuned_tokenizer=ft_tokenizer, reverse=reverse),
         out)


def dcv(
    *,
    base: ModelArg,
    task: TaskArg,
    sft: Annotated[str, typer.Option("--sft", help="The SFT model.")],
    rl: Annotated[str, typer.Option("--rl", help="The RL model.")],
    tau: Annotated[float, typer.Option("--tau", help="Vulnerability threshold (see --threshold).")] = 0.1,
    threshold: Annotated[Threshold, typer.Option(
        "--threshold", help="relative: V(h)/|s_h| > tau on the base circuit's heads (s_h: the head's base "
        "effect); absolute: V(h) > tau.")] = Threshold.relative,
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

    check_tau(tau)  # before any model is loaded
    check_output_path(out)
    the_task = task_for(task, split, n, base, trust_remote_code)
    models, tokenizers = {}, {}
    for role, name in (("base", base), ("sft", sft), ("rl", rl)):
        models[role], tokenizers[role] = load(name, device, dtype, attn, allow_pickle, trust_remote_code)
    settings = CircuitSettings(method=circuit_method.value, metric=metric.value, ablation=ablation.value,
                               top_k=check_top_k(models["base"], top_k), batch_size=batch_size)
    emit(dcv_result(models["base"], models["sft"], models["rl"], tokenizers["base"], the_task,
                    names={"base": base, "sft": sft, "rl": rl}, settings=settings, cmap_method=method.value,
                    tau=tau, threshold=threshold.value, tokenizers=tokenizers), out)


def dcm(
    *,
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

    check_output_path(out)
    target_list = None
    if targets is not None:
        target_list = read_json(targets, "targets file")
        if not isinstance(target_list, list) or not all(isinstance(t, str) for t in target_list):
            raise InputError(f"{targets}: expected a JSON list of strings, one target per example")
    the_task = task_for(task, split, n, model, trust_remote_code)
    loaded, tokenizer = load(model, device, dtype, attn, allow_pickle, trust_remote_code)
    emit(dcm_result(loaded, tokenizer, the_task, model_name=model, targets=target_list, lam=lam, lr=lr, steps=steps,
                    seed=seed),
         out)


def faithfulness_cmd(
    *,
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

    check_output_path(out)
    heads_list = circuit_from_json(read_json(circuit, "circuit file"), str(circuit))
    the_task = task_for(task, split, n, model, trust_remote_code)
    loaded, tokenizer = load(model, device, dtype, attn, allow_pickle, trust_remote_code)
    emit(faithfulness_result(loaded, tokenizer, the_task, heads_list, model_name=model, ablation=ablation.value,
                             n_random=n_random, seed=seed, batch_size=batch_size), out)

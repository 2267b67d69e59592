"""CLI: ``circuitdrift eval``, the measurements of one model (evaluate/measure.py).

Mounted by ``circuitdrift.cli`` with ``register(app)``. Bad input raises
:class:`~circuitdrift.errors.InputError` (the CLI exits 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from circuitdrift.circuits.cli_options import MODEL_HELP, TASK_HELP
from circuitdrift.errors import InputError
from circuitdrift.evaluate.measure import evaluate_model
from circuitdrift.evaluate.settings import MeasureSettings
from circuitdrift.io import write_json
from circuitdrift.models.load import load_model
from circuitdrift.tasks.registry import require_size, resolve_task, resolve_task_up_to

_D = MeasureSettings()  # the defaults, shared with the experiment config's eval: section


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to ``app``."""
    app.command("eval", help="Target accuracy, probe accuracy, forgetting and forward KL of one model, "
                "measured as `circuitdrift run` measures a checkpoint.")(eval_command)


def eval_command(
    *,
    model: str = typer.Argument(..., help=MODEL_HELP),
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    out: Path = typer.Option(..., "--out", help="JSON file to write"),
    base: str | None = typer.Option(None, "--base", help="base model: adds forgetting, log-prob drift and KL"),
    split: str = typer.Option(_D.split, "--split", help="task split to evaluate"),
    n: int | None = typer.Option(None, "--n", min=1, help=f"first N target examples (default: {_D.target_n}, or "
                                 "all the task has when fewer; an explicit N the task lacks is an error)"),
    probes: str | None = typer.Option(None, "--probes", help="comma-separated probe tasks ('' for none); "
                                      "default: the probe set registered for the model's tokenizer (the "
                                      "organism's for the organism, hf-* for other models)"),
    probe_n: int | None = typer.Option(None, "--probe-n", min=1, help=f"examples per probe, teacher-forced "
                                       f"(default: {_D.probe_n}, or all a probe has when fewer)"),
    answer_tokens: int = typer.Option(_D.max_new_tokens, "--answer-tokens", min=1,
                                      help="greedy tokens per target-task prompt"),
    kl_samples: int = typer.Option(_D.kl_samples, "--kl-samples", min=1, help="completions sampled from the base"),
    temperature: float = typer.Option(_D.kl_temperature, "--temperature", min=0.0, help="KL sampling temperature"),
    top_p: float = typer.Option(_D.kl_top_p, "--top-p", min=0.0, max=1.0,
                                help="KL sampling top-p: must be 1 (a truncated distribution's KL is not finite)"),
    max_new_tokens: int = typer.Option(_D.kl_max_new_tokens, "--max-new-tokens", min=1,
                                       help="KL completion length cap"),
    exact_kl: bool = typer.Option(_D.exact_kl, "--exact-kl/--no-exact-kl",
                                  help="also the exact answer-position KL (with --base)"),
    logprob_drift: bool = typer.Option(_D.logprob_drift, "--logprob-drift/--no-logprob-drift",
                                       help="probe answer log-probability drift from the base (with --base)"),
    lm_eval: str = typer.Option("", "--lm-eval", help="comma-separated LM-Eval benchmarks (needs the lmeval extra)"),
    lm_eval_limit: int = typer.Option(100, "--lm-eval-limit", min=1, help="examples per LM-Eval benchmark"),
    batch_size: int = typer.Option(_D.batch_size, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed", help="draws the task examples and the KL samples"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16"),
) -> None:
    if temperature <= 0 or top_p != 1:
        raise InputError("--temperature must be positive and --top-p 1: the KL samples and scores both models at "
                         "one temperature, untruncated")
    settings = MeasureSettings(
        split=split, target_n=n or _D.target_n, probe_n=probe_n or _D.probe_n, max_new_tokens=answer_tokens,
        kl_samples=kl_samples, kl_temperature=temperature, kl_top_p=top_p, kl_max_new_tokens=max_new_tokens,
        batch_size=batch_size, exact_kl=exact_kl, logprob_drift=logprob_drift,
    )
    fine_tuned, tokenizer = load_model(model, dtype=dtype, device=device)
    if n is None:  # the default: what the task has, up to its cap, and say so when that is less
        target = resolve_task_up_to(task, split=split, n=settings.target_n, seed=seed, tokenizer=tokenizer)
        if len(target) < settings.target_n:
            typer.echo(f"note: task '{target.name}' has {len(target)} usable examples in split '{split}': "
                       f"evaluating all {len(target)} (default --n {settings.target_n})", err=True)
    else:
        target = require_size(resolve_task(task, split=split, n=n, seed=seed, tokenizer=tokenizer), n)
    base_model = load_model(base, dtype=dtype, device=device)[0] if base else None
    result = evaluate_model(
        fine_tuned, tokenizer, target, base=base_model, settings=settings, model_name=model,
        probes=None if probes is None else tuple(p for p in probes.split(",") if p.strip()), seed=seed,
        lm_eval_tasks=tuple(t for t in lm_eval.split(",") if t.strip()), lm_eval_limit=lm_eval_limit,
        exact_probe_n=probe_n is not None,
    )
    write_json(out, result)
    typer.echo(json.dumps(result, indent=2))

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
from circuitdrift.evaluate.measure import EvalSettings, evaluate_model
from circuitdrift.io import write_json
from circuitdrift.models.load import load_model
from circuitdrift.tasks.registry import resolve_task


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to ``app``."""
    app.command("eval", help="Target accuracy, probe accuracy, forgetting and forward KL of one model.")(eval_command)


def eval_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    out: Path = typer.Option(..., "--out", help="JSON file to write"),
    base: str | None = typer.Option(None, "--base", help="base model: adds forgetting and forward KL"),
    split: str = typer.Option("test", "--split", help="task split to evaluate"),
    n: int | None = typer.Option(None, "--n", min=1, help="first N target examples (all by default)"),
    probes: str | None = typer.Option(None, "--probes", help="comma-separated probe tasks ('' for none); "
                                      "default: the organism's probes for the organism, hf-* for other models"),
    probe_n: int | None = typer.Option(None, "--probe-n", min=1, help="examples per probe (default: each "
                                       "probe's own size)"),
    answer_tokens: int = typer.Option(8, "--answer-tokens", min=1, help="greedy tokens per accuracy prompt"),
    kl_samples: int = typer.Option(200, "--kl-samples", min=1, help="completions sampled from the base"),
    temperature: float = typer.Option(0.6, "--temperature", min=0.0, help="KL sampling temperature"),
    top_p: float = typer.Option(0.85, "--top-p", min=0.0, max=1.0, help="KL sampling top-p"),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="KL completion length cap"),
    lm_eval: str = typer.Option("", "--lm-eval", help="comma-separated LM-Eval benchmarks (needs the lmeval extra)"),
    lm_eval_limit: int = typer.Option(100, "--lm-eval-limit", min=1, help="examples per LM-Eval benchmark"),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16"),
) -> None:
    if temperature <= 0 or top_p <= 0:
        raise InputError("--temperature and --top-p must be positive")
    settings = EvalSettings(
        split=split, n=n, probes=None if probes is None else tuple(p for p in probes.split(",") if p.strip()),
        probe_n=probe_n, max_new_tokens=answer_tokens, kl_samples=kl_samples, kl_temperature=temperature,
        kl_top_p=top_p, kl_max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
        lm_eval_tasks=tuple(t for t in lm_eval.split(",") if t.strip()), lm_eval_limit=lm_eval_limit,
    )
    fine_tuned, tokenizer = load_model(model, dtype=dtype, device=device)
    target = resolve_task(task, split=split, n=n, seed=seed, tokenizer=tokenizer)
    base_model = load_model(base, dtype=dtype, device=device)[0] if base else None
    result = evaluate_model(fine_tuned, tokenizer, target, base_model, settings, model_name=model)
    write_json(out, result)
    typer.echo(json.dumps(result, indent=2))

"""Head importance for a task: exact patching, attribution patching or EAP-IG (docs/methods.md §3).

    s_h = mean_i (M_patch,i - M_org,i) / M_org,i      (metric ``prob``: relative change of P)
    s_h = mean_i (M_patch,i - M_org,i)                (metric ``logit-diff``)

The most negative scores mark the most important heads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from circuitdrift.circuits.attribution import attribution_effects
from circuitdrift.circuits.forward import model_device, run_logits, synchronize
from circuitdrift.circuits.metrics import check_differentiable, metric_fn
from circuitdrift.circuits.patching import (
    ablation_sources,
    all_heads,
    check_ablation,
    effect,
    mean_head_outputs,
    patched_values,
)
from circuitdrift.circuits.scores import HeadScores
from circuitdrift.circuits.vocabulary import SCORING_METHODS
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout
from circuitdrift.tasks.base import Task, TaskBatch, encode, iter_batches


def check_method(method: str, allowed: tuple[str, ...] = SCORING_METHODS) -> None:
    if method not in allowed:
        raise InputError(f"--method {method}: unknown (use one of {', '.join(allowed)})")


def head_scores(
    model: nn.Module,
    tokenizer,
    task: Task,
    *,
    method: str = "exact",
    metric: str = "prob",
    ablation: str = "corrupt",
    batch_size: int = 16,
    ig_steps: int = 5,
    heads_per_pass: int | None = None,
    keep_clean: Callable[[int, TaskBatch, Tensor], None] | None = None,
) -> HeadScores:
    """Score every attention head of ``model`` on ``task``; see the module docstring for the formula.

    ``keep_clean`` (attribution and EAP-IG): given each batch's index, the batch and its clean run's head
    outputs, which those methods compute anyway (circuits/crossmodel.py DonorHeads reuses them for CMAP).
    """
    check_method(method)
    check_differentiable(metric, method)
    check_ablation(ablation)
    if method == "eap-ig" and ablation != "corrupt":
        raise InputError("--method eap-ig integrates from the counterfactual input: use --ablation corrupt")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")
    measure = metric_fn(metric)
    relative = metric == "prob"
    layout = HeadLayout.of(model)
    device = model_device(model)
    encoded = encode(task, tokenizer)
    pad = tokenizer.pad_token_id
    means = mean_head_outputs(model, encoded, batch_size, pad) if ablation == "mean" else None
    heads = all_heads(layout)
    total = torch.zeros(layout.shape, dtype=torch.float64)
    started = time.perf_counter()
    for index, batch in enumerate(iter_batches(encoded, batch_size, pad)):
        batch = batch.to(device)
        sources = ablation_sources(model, batch, ablation, means)
        if method == "exact":
            clean, patched = patched_values(model, batch, sources, measure, heads, heads_per_pass)
            total += effect(clean, patched, relative).sum(-1).view(layout.shape).cpu()
        else:
            shape = (*batch.clean.shape, layout.n_heads, layout.head_dim)  # [B, T, H, d]
            source = torch.stack([sources[layer].expand(shape) for layer in range(layout.n_layers)])
            steps = ig_steps if method == "eap-ig" else 1
            keep = None if keep_clean is None else partial(keep_clean, index, batch)
            total += attribution_effects(model, batch, measure, source, relative, steps,
                                         keep_clean=keep).sum(0).cpu()
    synchronize(device)
    elapsed = time.perf_counter() - started
    meta = {"task": task.name, "method": method, "metric": metric, "ablation": ablation,
            "n_examples": len(task), "timing": {"total_s": elapsed}}
    if method == "eap-ig":
        meta["ig_steps"] = ig_steps
    return HeadScores(total / len(task), meta)


@torch.no_grad()
def plain_forward_seconds(model: nn.Module, tokenizer, task: Task, batch_size: int = 16) -> float:
    """Seconds for one plain forward pass over the same examples and batches (the timing reference)."""
    device = model_device(model)
    batches = [b.to(device) for b in iter_batches(encode(task, tokenizer), batch_size, tokenizer.pad_token_id)]
    synchronize(device)  # the batches' copies to the device are not timed
    started = time.perf_counter()
    for batch in batches:
        run_logits(model, batch.clean, batch)
    synchronize(device)
    return time.perf_counter() - started

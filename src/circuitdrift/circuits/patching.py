"""Exact activation patching of every attention head, batched, beside a naive reference loop.

For one batch of examples, the heads of a layer are patched in one forward
pass: the batch is repeated once per head ("replica") and replica r has only
head r replaced. Blocks below the patched layer replay the clean run's
outputs (they cannot change), so layer l costs (L - l) / L of a forward. The
numbers equal the naive loop's, one head and one example at a time, to
float32 rounding; tests and ``benchmarks/heads.py`` check both.

Ablations: ``corrupt`` takes the head's output on the counterfactual
sequence (docs/methods.md §3), ``zero`` sets it to zero, ``mean`` to its mean over
all examples and non-pad positions of the clean run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from circuitdrift.circuits.forward import (
    model_device,
    moved_like,
    prefix_replay,
    record_layer_outputs,
    run_heads_only,
    run_logits,
    scored_logits,
)
from circuitdrift.circuits.metrics import MetricFn
from circuitdrift.circuits.scores import Head
from circuitdrift.circuits.vocabulary import ABLATIONS
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, head_hooks, record_heads
from circuitdrift.tasks.base import EncodedExample, TaskBatch, collate, iter_batches

Sources = dict[int, Tensor]  # layer -> head outputs broadcastable to [B, T, H, d]


def check_ablation(ablation: str) -> None:
    if ablation not in ABLATIONS:
        raise InputError(f"--ablation {ablation}: unknown (use one of {', '.join(ABLATIONS)})")


@torch.no_grad()
def mean_head_outputs(model: nn.Module, encoded: Sequence[EncodedExample], batch_size: int, pad_id: int) -> Sources:
    """Mean of each head's output over all examples and non-pad positions of the clean run: {layer: [H, d]}."""
    device = model_device(model)
    sums: dict[int, Tensor] = {}
    count = 0
    for batch in iter_batches(encoded, batch_size, pad_id):
        batch = batch.to(device)
        mask = batch.attention_mask.bool()  # [B, T]
        with record_heads(model) as heads:
            run_heads_only(model, batch.clean, batch)
        for layer, z in heads.items():
            total = z[mask].double().sum(0)  # [H, d]
            sums[layer] = sums[layer] + total if layer in sums else total
        count += int(mask.sum())
    dtype = next(model.parameters()).dtype
    return {layer: (s / count).to(dtype) for layer, s in sums.items()}


@torch.no_grad()
def ablation_sources(model: nn.Module, batch: TaskBatch, ablation: str, means: Sources | None) -> Sources:
    """What replaces a head's output under each ablation, per layer."""
    layout = HeadLayout.of(model)
    if ablation == "corrupt":
        with record_heads(model) as heads:
            run_heads_only(model, batch.corrupt, batch)
        return dict(heads)
    if ablation == "zero":
        p = next(model.parameters())
        zero = torch.zeros(layout.n_heads, layout.head_dim, dtype=p.dtype, device=p.device)
        return {layer: zero for layer in range(layout.n_layers)}
    if ablation == "mean":
        if means is None:
            raise ValueError("mean ablation needs the mean head outputs")
        return means
    check_ablation(ablation)
    raise AssertionError("unreachable")


@torch.no_grad()
def patched_values(
    model: nn.Module,
    batch: TaskBatch,
    sources: Sources,
    metric: MetricFn,
    heads: Sequence[Head],
    heads_per_pass: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Metric per example on the clean run, and with each head in ``heads`` patched from ``sources``.

    Returns ``(clean [B], patched [len(heads), B])``.
    """
    layout = HeadLayout.of(model)
    per_pass = heads_per_pass or layout.n_heads
    with record_layer_outputs(model) as layer_outputs:
        clean = metric(*scored_logits(model, batch, ids=batch.clean))
    by_layer: dict[int, list[int]] = defaultdict(list)
    for index, (layer, _) in enumerate(heads):
        by_layer[layer].append(index)
    patched = torch.empty(len(heads), batch.size, dtype=clean.dtype, device=clean.device)
    for layer, indices in sorted(by_layer.items()):
        for start in range(0, len(indices), per_pass):
            chunk = indices[start : start + per_pass]
            which = torch.zeros(len(chunk), layout.n_heads, dtype=torch.bool, device=clean.device)
            for r, index in enumerate(chunk):
                which[r, heads[index][1]] = True
            patch = _replica_patch(which, sources[layer], batch.size)
            with head_hooks(model, lambda _layer, z, patch=patch: patch(z), layers=[layer]):
                with prefix_replay(model, layer_outputs, layer, repeat=len(chunk)):
                    scored = scored_logits(model, batch, ids=batch.clean, repeat=len(chunk))
            patched[chunk] = metric(*scored).view(len(chunk), batch.size)
    return clean, patched


def _replica_patch(which: Tensor, source: Tensor, batch_size: int):
    """Replica r replaces the heads ``which[r]`` ([R, H] bool) by ``source`` ([B, T, H, d] or [H, d])."""
    replicas = which.shape[0]

    def patch(z: Tensor) -> Tensor:  # z: [R*B, T, H, d]
        view = z.view(replicas, batch_size, *z.shape[1:])
        mask = which[:, None, None, :, None].to(z.device)  # [R, 1, 1, H, 1]
        return torch.where(mask, moved_like(source, z), view).view_as(z)

    return patch


@torch.no_grad()
def naive_patched_values(
    model: nn.Module,
    encoded: Sequence[EncodedExample],
    pad_id: int,
    metric: MetricFn,
    sources_for: Callable[[TaskBatch], Sources],
    heads: Sequence[Head],
) -> tuple[Tensor, Tensor]:
    """Reference: one example and one head per forward pass, no replay, no replicas.

    ``sources_for(batch)`` gives the replacement head outputs for a one-example
    batch (an ablation, or another model's heads for CMAP). Returns
    ``(clean [N], patched [len(heads), N])`` like :func:`patched_values`.
    """
    device = model_device(model)
    clean, patched = [], torch.empty(len(heads), len(encoded), dtype=torch.float64)
    for i, example in enumerate(encoded):
        batch = collate([example], pad_id).to(device)
        clean.append(metric(run_logits(model, batch.clean, batch), batch).item())
        sources = sources_for(batch)
        for j, (layer, head) in enumerate(heads):

            def patch_one(_layer, z, head=head, source=sources[layer]):
                z = z.clone()
                z[..., head, :] = moved_like(source, z).expand_as(z)[..., head, :]
                return z

            with head_hooks(model, patch_one, layers=[layer]):
                patched[j, i] = metric(run_logits(model, batch.clean, batch), batch).item()
    return torch.tensor(clean, dtype=torch.float64), patched


def all_heads(layout: HeadLayout) -> list[Head]:
    return [(layer, head) for layer in range(layout.n_layers) for head in range(layout.n_heads)]


def effect(clean: Tensor, patched: Tensor, relative: bool) -> Tensor:
    """Per-example effect of each patch: (patched - clean) / clean when relative, else the difference."""
    diff = patched.double() - clean.double()[None]
    return diff / clean.double()[None] if relative else diff

"""Circuit discovery by iterative exact patching: prune heads one at a time, in the circuit's own context.

One-shot top-k (score every head by patching it alone in the full model) ranks
redundant heads low: when several heads do the same job, knocking out any one
of them costs little, yet knocking out all of them destroys the task (backup
heads, self-repair). Faithfulness asks the opposite question — do these heads
suffice with everything else ablated — so a one-shot ranking can miss the heads
a sufficient circuit needs. Pruning asks that question at every step (ACDC,
Conmy et al. 2023, at head granularity, stopped at k heads):

    C = all heads
    while |C| > k:
        for h in C: e(h) = mean_i M_i(only C - {h} intact) - mean_i M_i(only C intact)
        C = C - {the heads with the largest e (least harmful to remove)}

Heads outside C are replaced by the ablation (mean, zero or the counterfactual
run's output) in every run. Each round is exact patching: one forward per
candidate, batched as replicas of the batch (``heads_per_pass`` at a time), the
blocks below the removed head's layer replayed from the circuit's own run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from circuitdrift.circuits.forward import model_device, prefix_replay, record_layer_outputs, scored_logits
from circuitdrift.circuits.metrics import MetricFn, metric_fn
from circuitdrift.circuits.patching import ablation_sources, check_ablation, mean_head_outputs
from circuitdrift.circuits.scores import Head, HeadScores, head_name
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, head_hooks
from circuitdrift.tasks.base import Task, TaskBatch, encode, iter_batches


@dataclass
class PrunedCircuit:
    """The kept heads, in-context removal effects of every head, and the metric along the way.

    ``scores`` [L, H]: for a removed head, the mean metric change its removal
    caused in the round it was removed; for a kept head, the change from
    removing it from the final circuit. Negative = the head was needed there.
    ``scores.meta`` repeats the record for JSON: ``removal_order``, ``full_metric``, ``circuit_metric``.
    """

    circuit: list[Head]
    scores: HeadScores
    order: list[Head]  # removed heads, first removed first
    full_metric: float  # mean metric of the intact model
    circuit_metric: float  # mean metric with only the circuit intact


def _ablate_outside(keeps: Tensor, sources: dict[int, Tensor], batch_size: int):
    """Head hook: replica r keeps the heads ``keeps[r]`` ([R, L, H] bool) and takes the rest from ``sources``."""
    reps = keeps.shape[0]

    def ablate(layer: int, z: Tensor) -> Tensor:  # z: [R*B, T, H, d]
        view = z.view(reps, batch_size, *z.shape[1:])
        keep = keeps[:, layer][:, None, None, :, None]  # [R, 1, 1, H, 1]
        return torch.where(keep, view, sources[layer].to(z.dtype)).view_as(z)

    return ablate


@torch.no_grad()
def removal_metrics(
    model: nn.Module, batch: TaskBatch, sources: dict[int, Tensor], kept: Tensor, candidates: list[Head], *,
    measure: MetricFn, heads_per_pass: int,
) -> tuple[Tensor, Tensor]:
    """Metric per example with only ``kept`` intact, and with each candidate also removed.

    Returns ``(context [B], removed [len(candidates), B])``. Removing a head of
    layer l cannot change the blocks below l, so they replay the context run.
    """
    with record_layer_outputs(model) as outputs:
        with head_hooks(model, _ablate_outside(kept[None], sources, batch.size)):
            context = measure(*scored_logits(model, batch, ids=batch.clean))
    removed = torch.empty(len(candidates), batch.size, dtype=context.dtype, device=context.device)
    by_layer: dict[int, list[int]] = defaultdict(list)
    for index, (layer, _) in enumerate(candidates):
        by_layer[layer].append(index)
    for layer, indices in sorted(by_layer.items()):
        for start in range(0, len(indices), heads_per_pass):
            chunk = indices[start : start + heads_per_pass]
            keeps = kept[None].repeat(len(chunk), 1, 1)
            for r, index in enumerate(chunk):
                keeps[r][candidates[index]] = False
            with head_hooks(model, _ablate_outside(keeps, sources, batch.size), layers=range(layer, kept.shape[0])):
                with prefix_replay(model, outputs, layer, repeat=len(chunk)):
                    scored = scored_logits(model, batch, ids=batch.clean, repeat=len(chunk))
            removed[chunk] = measure(*scored).view(len(chunk), batch.size)
    return context, removed


@torch.no_grad()
def prune_circuit(
    model: nn.Module,
    tokenizer,
    task: Task,
    *,
    k: int,
    metric: str = "logprob",
    ablation: str = "mean",
    batch_size: int = 32,
    heads_per_pass: int | None = None,
) -> PrunedCircuit:
    """The k heads left by iterative exact-patching pruning (one head removed per round)."""
    check_ablation(ablation)
    layout = HeadLayout.of(model)
    if not 1 <= k <= layout.n_total:
        raise InputError(f"circuit size k={k}: must be between 1 and {layout.n_total} (the model's heads)")
    measure = metric_fn(metric)
    device = model_device(model)
    encoded = encode(task, tokenizer)
    pad = tokenizer.pad_token_id
    means = mean_head_outputs(model, encoded, batch_size, pad) if ablation == "mean" else None
    batches = []
    for batch in iter_batches(encoded, batch_size, pad):
        batch = batch.to(device)
        batches.append((batch, ablation_sources(model, batch, ablation, means)))
    per_pass = heads_per_pass or layout.n_heads

    def mean_metrics(kept: Tensor, candidates: list[Head]) -> tuple[float, Tensor]:  # means over all examples
        context, removed = 0.0, torch.zeros(len(candidates), dtype=torch.float64)
        for batch, sources in batches:
            c, r = removal_metrics(model, batch, sources, kept.to(device), candidates, measure=measure,
                                   heads_per_pass=per_pass)
            context += c.double().sum().item()
            removed += r.double().sum(1).cpu()
        return context / len(encoded), removed / len(encoded)

    kept = torch.ones(layout.shape, dtype=torch.bool)
    scores = torch.zeros(layout.shape, dtype=torch.float64)
    order: list[Head] = []
    full = None
    started = time.perf_counter()
    while True:
        candidates = [tuple(h) for h in kept.nonzero().tolist()]  # layer-major order
        current, values = mean_metrics(kept, candidates)
        full = current if full is None else full
        effects = values - current
        if len(candidates) == k:  # the final circuit: record what removing each kept head would cost
            for (layer, head), e in zip(candidates, effects.tolist(), strict=True):
                scores[layer, head] = e
            break
        best = int(torch.argmax(effects))  # the removal that hurts least (ties: lowest layer, head)
        layer, head = candidates[best]
        kept[layer, head] = False
        scores[layer, head] = effects[best].item()
        order.append((layer, head))
    meta = {"task": task.name, "method": "prune", "metric": metric, "ablation": ablation, "k": k,
            "n_examples": len(task), "removal_order": [head_name(*h) for h in order], "full_metric": full,
            "circuit_metric": current, "timing": {"total_s": time.perf_counter() - started}}
    circuit = sorted(candidates, key=lambda h: (scores[h].item(), h))  # most needed first, like top_k
    return PrunedCircuit(circuit, HeadScores(scores, meta), order, full, current)

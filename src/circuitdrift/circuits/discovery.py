"""One entry point for finding a circuit: one-shot top-k of head scores, or iterative pruning.

``exact``, ``attribution`` and ``eap-ig`` score every head once and take the
k most important (docs/methods.md §3); ``prune`` removes heads one at a time by exact
patching in the context of the heads still kept (:mod:`circuitdrift.circuits.pruning`),
which finds sufficient circuits where heads back each other up; ``dcm`` learns a mask per head
towards the counter-answer (:mod:`circuitdrift.circuits.dcm`): its circuit is the heads whose mask
ends above 0.5, at most ``top_k`` of them, and its scores are -m (most negative = most important).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from torch import nn

from circuitdrift.circuits.dcm import THRESHOLD, dcm_masks
from circuitdrift.circuits.pruning import prune_circuit
from circuitdrift.circuits.scores import Head, HeadScores
from circuitdrift.circuits.scoring import head_scores
from circuitdrift.circuits.vocabulary import Ablation, CircuitMethod, Metric
from circuitdrift.errors import InputError
from circuitdrift.tasks.base import Task


@dataclass(frozen=True)
class CircuitSettings:
    """How a circuit is found, as one value: what the pipeline config and the ``heads``/``dcv`` results pass on."""

    method: CircuitMethod = "exact"
    metric: Metric = "prob"
    ablation: Ablation = "corrupt"
    top_k: int = 20
    batch_size: int = 16
    ig_steps: int = 5
    threshold: float | None = None

    def find(self, model: nn.Module, tokenizer, task: Task, *, keep_clean=None) -> tuple[HeadScores, list[Head]]:
        """:func:`find_circuit` with these settings."""
        return find_circuit(model, tokenizer, task, self, keep_clean=keep_clean)


def find_circuit(model: nn.Module, tokenizer, task: Task, settings: CircuitSettings | None = None, *,
                 keep_clean=None) -> tuple[HeadScores, list[Head]]:
    """Scores of every head and the circuit (``top_k`` heads, or those at or below ``threshold``).

    ``keep_clean``: :func:`~circuitdrift.circuits.scoring.head_scores`' (the clean runs' head outputs of the
    attribution methods); the other methods never call it."""
    s = settings or CircuitSettings()
    method, metric, ablation, top_k, threshold = s.method, s.metric, s.ablation, s.top_k, s.threshold
    if method == "prune":
        if threshold is not None:
            raise InputError("--threshold: pruning stops at a circuit size; give --top-k instead")
        pruned = prune_circuit(model, tokenizer, task, k=top_k, metric=metric, ablation=ablation,
                               batch_size=s.batch_size)
        return pruned.scores, pruned.circuit
    if method == "dcm":
        if threshold is not None:
            raise InputError("--threshold: DCM's circuit is the heads with mask > 0.5; give --top-k to cap it")
        started = time.perf_counter()
        masks = dcm_masks(model, tokenizer, task)  # the authors' settings: Adam lr 0.1, 100 steps, lambda 0.1
        meta = {**masks.masks.meta, "timing": {"total_s": time.perf_counter() - started}}
        ranking = HeadScores(-masks.masks.scores, meta)
        chosen = ranking.below(-THRESHOLD)
        if not chosen:
            raise InputError(f"dcm on '{task.name}': no head's mask ended above 0.5 (largest "
                             f"{float(masks.masks.scores.max()):.3f}); the counterfactuals may not change the answer")
        return ranking, chosen[:top_k]
    scores = head_scores(model, tokenizer, task, method=method, metric=metric, ablation=ablation,
                         batch_size=s.batch_size, ig_steps=s.ig_steps, keep_clean=keep_clean)
    return scores, select_circuit(scores, top_k, threshold)


def select_circuit(scores: HeadScores, top_k: int | None = 20, threshold: float | None = None) -> list[Head]:
    """Top-k heads (most negative scores), or all heads at or below ``threshold`` when it is given."""
    if threshold is not None:
        return scores.below(threshold)
    return scores.top_k(top_k if top_k is not None else 20)

"""Refine a circuit by swaps: exchange one head inside for one outside while exact-match accuracy rises.

Pruning removes heads greedily and never revisits a removal, so it can stop at a
circuit that one exchange would improve. The swap search is the simplest local
search on faithfulness itself: score every circuit that differs by one head (k x
(n - k) candidates, all with the same ablation of the heads outside), keep the
best if it beats the current circuit, and repeat until no single swap helps. The
result is a local optimum of accuracy on the examples it was given, so a card
that selects circuits on validation examples must measure faithfulness on
others (it does: docs/organism.md).
"""

from __future__ import annotations

from torch import nn

from circuitdrift.circuits.faithfulness import circuit_accuracies
from circuitdrift.circuits.scores import Head
from circuitdrift.models.heads import HeadLayout
from circuitdrift.tasks.base import Task


def refine_by_swaps(model: nn.Module, tokenizer, task: Task, circuit: list[Head], *, ablation: str = "mean",
                    max_rounds: int = 10, batch_size: int = 64) -> tuple[list[Head], float]:
    """The circuit after swap search, and its exact-match accuracy on ``task`` (heads outside ablated).

    Ties keep the current circuit; among equally good swaps the first in (inside, outside) order wins,
    so the result is deterministic.
    """
    layout = HeadLayout.of(model)
    every = [(layer, head) for layer in range(layout.n_layers) for head in range(layout.n_heads)]
    current = sorted(circuit)
    best = circuit_accuracies(model, tokenizer, task, [current], ablation, batch_size)[0]
    for _ in range(max_rounds):
        candidates = [sorted(set(current) - {inside} | {outside})
                      for inside in current for outside in every if outside not in current]
        if not candidates:
            break
        scores = circuit_accuracies(model, tokenizer, task, candidates, ablation, batch_size)
        top = max(range(len(candidates)), key=lambda i: (scores[i], -i))
        if scores[top] <= best:
            break
        current, best = candidates[top], scores[top]
    return current, best

"""Swap refinement of a circuit: a local optimum of accuracy, never worse than where it started."""

from __future__ import annotations

import itertools

from circuitdrift.circuits.faithfulness import circuit_accuracies
from circuitdrift.circuits.refine import refine_by_swaps
from tests.conftest import make_model, self_consistent_task


def test_swaps_reach_a_local_optimum_no_worse_than_the_start(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, n_layers=2)
    task = self_consistent_task(model, word_tokenizer, n=8)
    heads = [(layer, head) for layer in range(2) for head in range(model.config.num_attention_heads)]
    everything = list(itertools.combinations(heads, 3))
    scores = dict(zip(everything, circuit_accuracies(model, word_tokenizer, task, [list(c) for c in everything]),
                      strict=True))  # every 3-head circuit, scored once: the reference
    worst = min(everything, key=lambda c: scores[c])
    circuit, accuracy = refine_by_swaps(model, word_tokenizer, task, list(worst))
    assert accuracy == scores[tuple(circuit)] >= scores[worst]
    for inside in circuit:  # no single swap improves the result
        for outside in set(heads) - set(circuit):
            neighbour = tuple(sorted(set(circuit) - {inside} | {outside}))
            assert scores[neighbour] <= accuracy
    best = max(scores.values())
    assert refine_by_swaps(model, word_tokenizer, task, list(max(everything, key=lambda c: scores[c])))[1] == best
    assert len(set(scores.values())) > 2 and scores[worst] < accuracy  # the search had work to do

"""The shipped organism's circuits: each of the card's four circuits is faithful on the shipped weights, as the
card says, and the four differ; the card's circuit search, rerun on the shipped weights for one probe, finds the
card's circuit.

The search (three searches per probe) is the costliest check in the suite, so it is rerun for the probe whose
search is cheapest (SEARCHED); for the other probes the stored circuit's claim is checked directly, which costs one
faithfulness measurement each. The card's protocol: src/circuitdrift/organism/card.py.
"""

from __future__ import annotations

import itertools

import pytest

from circuitdrift.circuits.faithfulness import faithfulness
from circuitdrift.organism.card import (
    CIRCUIT_EXAMPLES,
    CIRCUIT_METHOD,
    PROBES,
    THRESHOLDS,
    choose_circuit,
    circuit_size,
    probe_task,
)  # fmt: skip

SEARCHED = "factual"  # the cheapest search: all 45 validation facts (the others search 128 examples)
METHODS = {CIRCUIT_METHOD, f"{CIRCUIT_METHOD}+swaps", "exact"}  # the candidates choose_circuit picks from


def heads(names: list[str]) -> list[tuple[int, int]]:
    """The card's "L0.H3" names as (layer, head)."""
    return [(int(layer[1:]), int(head[1:])) for layer, head in (name.split(".") for name in names)]


def n_heads(model) -> int:
    return model.config.num_hidden_layers * model.config.num_attention_heads


def check_faithful(organism, name: str, circuit: list[tuple[int, int]]):
    """The card's faithfulness protocol on the shipped weights: the test examples, mean ablation, 10 random
    circuits of the same size (seed 0). Returns the measurement."""
    model, tokenizer, card = organism
    k = circuit_size(n_heads(model))
    assert len(set(circuit)) == len(circuit) == k <= THRESHOLDS["circuit_share_max"] * n_heads(model)
    result = faithfulness(model, tokenizer, probe_task(name, "test", card["recipe"]["eval_examples"]), circuit,
                          ablation="mean", n_random=10, seed=0)
    assert result.faithfulness >= THRESHOLDS["faithfulness_min"]
    assert result.random_faithfulness <= result.faithfulness - 0.2
    return result


@pytest.mark.parametrize("name", PROBES)
def test_card_circuit_is_faithful_on_the_shipped_weights(organism, name):
    _, _, card = organism
    row = card["capabilities"]["probes"][name]
    assert row["circuit_method"].split(" ")[0] in METHODS
    result = check_faithful(organism, name, heads(row["circuit"]))
    assert result.faithfulness == pytest.approx(row["faithfulness"], abs=1e-3)
    assert result.random_faithfulness == pytest.approx(row["random_faithfulness"], abs=1e-3)


def test_card_circuits_differ_across_probes(organism):
    _, _, card = organism
    circuits = [frozenset(card["capabilities"]["probes"][name]["circuit"]) for name in PROBES]
    assert all(a != b for a, b in itertools.combinations(circuits, 2))


def test_card_search_rerun_finds_the_card_circuit(organism):
    """The card's search on the shipped weights: the card's circuit and method, up to one head that ties may swap
    across machines; a swapped circuit must itself be faithful."""
    model, tokenizer, card = organism
    row = card["capabilities"]["probes"][SEARCHED]
    k = circuit_size(n_heads(model))
    discovery = probe_task(SEARCHED, "validation", CIRCUIT_EXAMPLES)
    assert len(discovery) == row["n_circuit_examples"]
    circuit, method, _ = choose_circuit(model, tokenizer, discovery, k)
    found = [f"L{layer}.H{head}" for layer, head in circuit]
    assert len(set(found) & set(row["circuit"])) >= k - 1  # ties may swap the last head across machines
    assert row["circuit_method"].split(" ")[0] == method
    if set(found) != set(row["circuit"]):
        check_faithful(organism, SEARCHED, circuit)

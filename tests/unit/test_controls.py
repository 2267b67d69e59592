"""Controls for circuit claims, against hand computation and numpy: random head sets, percentiles, distance."""

from __future__ import annotations

import numpy as np
import pytest

from circuitdrift.compare.controls import (
    circuit_controls,
    compare_with_random,
    jaccard_distance,
    percentile,
    random_head_sets,
)
from circuitdrift.compare.schema import BaseCircuit, CheckpointMeasurement, ProbeMeasurement

SHAPE = (3, 4)
CIRCUIT = ["L2.H0", "L2.H1"]


def test_random_head_sets_are_distinct_within_a_set_reproducible_and_cover_the_model():
    sets = random_head_sets(SHAPE, 3, 50, seed=4)
    assert len(sets) == 50 and all(len(set(s)) == 3 for s in sets)
    assert sets == random_head_sets(SHAPE, 3, 50, seed=4) and sets != random_head_sets(SHAPE, 3, 50, seed=5)
    assert {h for s in sets for h in s} == {(layer, head) for layer in range(3) for head in range(4)}


def test_percentile_matches_numpy_and_jaccard_by_hand():
    values = [0.3, -1.0, 2.5, 0.0, 0.7, 1.1]
    for q in (0.0, 0.025, 0.5, 0.975, 1.0):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, 100 * q)))
    assert jaccard_distance(["a", "b"], ["b", "c"]) == pytest.approx(1 - 1 / 3)
    assert jaccard_distance(["a"], ["a"]) == 0.0 and jaccard_distance([], []) is None


def test_compare_with_random_says_differs_only_outside_the_interval():
    spread = [i / 19 for i in range(20)]  # 0 .. 1
    inside = compare_with_random(0.5, spread)
    assert inside["differs"] is False and inside["random_mean"] == pytest.approx(0.5)
    assert inside["random_lo"] == pytest.approx(np.percentile(spread, 2.5))
    assert compare_with_random(-0.2, spread)["differs"] is True
    assert compare_with_random(None, spread)["differs"] is None


def _record(method: str, seed: int, step: int, damage_scale: float, circuit: list[str], preservation: float):
    cmap = [[0.0] * 4 for _ in range(3)]
    for name in CIRCUIT:  # the base circuit's heads are the damaged ones
        layer, head = int(name[1]), int(name[-1])
        cmap[layer][head] = -damage_scale * (1 + seed)
    pm = ProbeMeasurement(accuracy=0.9, cmap=cmap, cmap_method="exact", damage=-damage_scale, circuit=circuit,
                          preservation=preservation)
    return CheckpointMeasurement(method=method, seed=seed, step=step, target_accuracy=0.5, target_n=4,
                                 target_unparsable=0, kl=0.0, kl_samples=1, probes={"p": pm})


def test_circuit_controls_by_hand():
    base = BaseCircuit(probe="p", method="exact", metric="prob", ablation="corrupt", n_examples=4, accuracy=0.9,
                       scores=[[0.0] * 4] * 3, circuit=CIRCUIT, faithfulness=1.0, faithfulness_ablation="mean",
                       random_faithfulness=0.1, random_faithfulness_all=[0.1])
    start = ["L2.H0", "L2.H1"]  # the base circuit re-discovered at step 0
    records = []
    for seed in (0, 1):
        records += [_record("sft", seed, 0, 0.0, start, 1.0),
                    _record("sft", seed, 5, 0.1, ["L2.H0", "L0.H0"], 0.5),
                    _record("sft", seed, 10, 0.2, ["L0.H0", "L0.H1"], 0.0)]
    out = circuit_controls(records, {"p": base}, n_random=20, seed=0)
    damage = out["random"]["sft"]["p"]["damage"]
    # the circuit: mean over seeds of mean over its heads = -(0.2 * 1 + 0.2 * 2) / 2 = -0.3
    assert damage["circuit"] == pytest.approx(-0.3) and damage["n_random"] == 20
    expected = [np.mean([np.mean([-0.2 * (1 + s) if (layer, head) in ((2, 0), (2, 1)) else 0.0
                                  for layer, head in heads]) for s in (0, 1)])
                for heads in random_head_sets(SHAPE, 2, 20, 0)]
    assert damage["random_mean"] == pytest.approx(float(np.mean(expected)))
    assert damage["differs"] is True  # no random pair of the 12 heads is the circuit itself more than by chance
    preservation = out["random"]["sft"]["p"]["preservation"]
    assert preservation["circuit"] == 0.0
    distance = out["distance"]["sft"]
    assert distance["steps"] == [0, 5, 10]
    # step 5: {L2.H0, L0.H0} vs {L2.H0, L2.H1}: 1 - 1/3; step 10: disjoint, 1
    assert [s["mean"] for s in distance["probes"]["p"]] == pytest.approx([0.0, 2 / 3, 1.0])
    assert [s["mean"] for s in distance["mean"]] == pytest.approx([0.0, 2 / 3, 1.0])

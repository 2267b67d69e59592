"""The sweep analysis on hand-made records: primary learning rates, matched levels and values, collapse counts."""

from __future__ import annotations

import pytest

from circuitdrift.compare.aggregate import degraded_logprob_heads
from circuitdrift.compare.schema import BaseCircuit, CheckpointMeasurement, ProbeMeasurement
from circuitdrift.compare.sweep import primary_learning_rates, sweep_analysis


def record(method, lr, seed, step, target, probe_acc, collapsed=False):
    probe = ProbeMeasurement(accuracy=probe_acc, cmap=[[0.0]], cmap_method="attribution", damage=0.0,
                             circuit=["L0.H0"], preservation=1.0)
    return CheckpointMeasurement(method=method, seed=seed, learning_rate=lr, step=step, target_accuracy=target,
                                 target_n=100, target_unparsable=0, kl=0.0, kl_samples=0, collapsed=collapsed,
                                 probes={"p": probe})


def records():
    """Base: target 0.4, probe 1.0. SFT forgets 0.2 per 0.1 of target gained, RL 0.1 (slope per lr below)."""
    out = []
    for seed in (0, 1):
        for method, lr, gain, cost in (("sft", 1e-4, 0.1, 0.2), ("sft", 1e-3, 0.2, 0.6),
                                       ("rl", 1e-4, 0.1, 0.1), ("rl", 1e-3, 0.15, 0.3)):
            for step in (0, 10, 20):
                target = 0.4 + gain * step / 10
                forgetting = cost * step / 10
                out.append(record(method, lr, seed, step, target, 1.0 - forgetting,
                                  collapsed=method == "rl" and lr == 1e-3 and seed == 1 and step == 20))
    return out


def test_primary_learning_rate_has_the_best_final_accuracy():
    assert primary_learning_rates(records()) == {"sft": 1e-3, "rl": 1e-3}


def test_matched_levels_and_values_by_hand():
    sweep = sweep_analysis(records(), ["sft", "rl"], ["p"], n_levels=2)
    # peaks: SFT best lr reaches 0.8, RL best 0.7 -> top 0.7; levels 0.4 + 0.3 * (1/2, 2/2) = 0.55, 0.7
    assert sweep["matched"]["levels"] == [0.55, 0.7]
    forgetting = sweep["matched"]["measures"]["forgetting"]
    # SFT at 0.55: lr 1e-4 crosses between steps 10 (0.5, 0.2) and 20 (0.6, 0.4) -> 0.3;
    #              lr 1e-3 between 0 (0.4, 0) and 10 (0.6, 0.6) -> 0.45; best (lowest) 0.3
    # RL at 0.55:  lr 1e-4 between 10 (0.5, 0.1) and 20 (0.6, 0.2) -> 0.15; lr 1e-3: (0.4,0)-(0.55,0.3) -> 0.3
    assert forgetting["by_method"]["sft"][0]["mean"] == pytest.approx(0.3)
    assert forgetting["by_method"]["rl"][0]["mean"] == pytest.approx(0.15)
    assert forgetting["difference"][0]["mean"] == pytest.approx(0.15)
    # at 0.7 only the 1e-3 runs get there: SFT (0.6, 0.6)-(0.8, 1.2) -> 0.9; RL reaches 0.7 at step 20 -> 0.6
    assert forgetting["by_method"]["sft"][1]["mean"] == pytest.approx(0.9)
    assert forgetting["by_method"]["rl"][1]["mean"] == pytest.approx(0.6)
    rows = {(r["method"], r["learning_rate"]): r for r in sweep["runs"]}
    assert rows[("rl", 1e-3)]["collapsed_seeds"] == 1 and rows[("sft", 1e-3)]["collapsed_seeds"] == 0
    assert rows[("rl", 1e-3)]["rollout_collapsed_seeds"] is None  # no monitor summaries given
    assert rows[("sft", 1e-4)]["final_forgetting"]["mean"] == pytest.approx(0.4)


def test_rollout_collapses_are_counted_per_learning_rate():
    rollouts = {"rl/0.001/0": {"collapse": None}, "rl/0.001/1": {"collapse": {"window": 3}}}
    sweep = sweep_analysis(records(), ["sft", "rl"], ["p"], n_levels=2, rollouts=rollouts)
    rows = {(r["method"], r["learning_rate"]): r for r in sweep["runs"]}
    assert rows[("rl", 1e-3)]["rollout_collapsed_seeds"] == 1 and rows[("rl", 1e-4)]["rollout_collapsed_seeds"] is None


def test_log_prob_degradation_threshold_scales_with_the_base_and_tau():
    circuit = BaseCircuit(probe="p", method="exact", metric="prob", ablation="corrupt", n_examples=4, accuracy=1.0,
                          scores=[[-1.0, 0.0]], circuit=["L0.H0", "L0.H1"], faithfulness=1.0,
                          faithfulness_ablation="mean", random_faithfulness=0.0, random_faithfulness_all=[0.0])
    m = record("sft", 1e-4, 0, 10, 0.5, 1.0)
    m.probes["p"] = m.probes["p"].model_copy(update={"cmap_logprob": [[-0.03, -0.01]], "base_logprob": -0.2})
    # threshold = tau * |base mean log P| = 0.1 * 0.2 = 0.02: only -0.03 is below -0.02
    assert degraded_logprob_heads(m, circuit, "p", tau=0.1) == 1
    assert degraded_logprob_heads(m, circuit, "p", tau=0.04) == 2  # threshold 0.008: both
    assert degraded_logprob_heads(m, circuit, "p", tau=0.2) == 0  # threshold 0.04: neither
    assert degraded_logprob_heads(record("sft", 1e-4, 0, 10, 0.5, 1.0), circuit, "p", 0.1) is None  # not measured


def test_matched_preservation_intervals_stay_in_range():
    out = []
    for seed, keep in ((0, 0.75), (1, 1.0), (2, 0.875)):
        for method in ("sft", "rl"):
            for step, target in ((0, 0.4), (10, 0.6)):
                m = record(method, 1e-4, seed, step, target, 1.0)
                m.probes["p"] = m.probes["p"].model_copy(update={"preservation": 1.0 if step == 0 else keep})
                out.append(m)
    matched = sweep_analysis(out, ["sft", "rl"], ["p"], n_levels=1)["matched"]["measures"]["preservation"]
    s = matched["by_method"]["sft"][0]  # at 0.6: 0.75, 1.0, 0.875 -> a plain t interval would pass 1
    assert s["scale"] == "logit" and 0.0 <= s["lo"] <= s["mean"] <= s["hi"] <= 1.0

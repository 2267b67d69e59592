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
    # the learning rate per seed and level is the one that reaches the level first (blind to forgetting):
    # SFT at 0.55: lr 1e-4 crosses at step 15, lr 1e-3 at step 7.5 (between (0.4, 0) and (0.6, 0.6)) -> 0.45
    # RL at 0.55:  lr 1e-4 at step 15, lr 1e-3 at step 10 exactly (0.55, 0.3) -> 0.3
    assert forgetting["selected_lr"]["sft"] == {"0": [1e-3, 1e-3], "1": [1e-3, 1e-3]}
    assert forgetting["by_method"]["sft"][0]["mean"] == pytest.approx(0.45)
    assert forgetting["by_method"]["rl"][0]["mean"] == pytest.approx(0.3)
    assert forgetting["difference"][0]["mean"] == pytest.approx(0.15)
    # two seeds per method: shown, but not reported (a level needs 3 runs per method)
    assert forgetting["reported"] == [False, False] and sweep["matched"]["min_runs"] == 3
    assert sweep["matched"]["selection_split"] == "test"  # these records carry no validation accuracy
    assert sweep["matched"]["primary"]["available"] is False
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
    # 0.875 + 4.302653 * 0.125 / sqrt(3) = 1.1855 -> cut at 1
    assert s["hi"] == 1.0 and s["lo"] == pytest.approx(0.875 - 4.302653 * 0.125 / 3**0.5, abs=1e-5)
    assert 0.0 <= s["lo"] <= s["mean"] <= s["hi"] <= 1.0 and matched["reported"] == [True]


def _with_validation(records_, shift_test: float = 0.0, probe_shift: float = 0.0):
    """The records with a validation accuracy (the test accuracy's schedule minus 0.05), test outcomes shifted."""
    out = []
    for r in records_:
        probe = r.probes["p"].model_copy(update={"accuracy": min(1.0, max(0.0, r.probes["p"].accuracy
                                                                           - probe_shift * (r.step > 0)))})
        out.append(r.model_copy(update={"selection_accuracy": r.target_accuracy - 0.05, "selection_n": 100,
                                        "selection_split": "validation",
                                        "target_accuracy": min(1.0, r.target_accuracy + shift_test * (r.step > 0)),
                                        "probes": {"p": probe}}))
    return out


def test_selection_ignores_the_test_split():
    before = sweep_analysis(_with_validation(records()), ["sft", "rl"], ["p"], n_levels=2)
    # only test-split outcomes change: target accuracy and probe accuracy at every trained checkpoint
    after = sweep_analysis(_with_validation(records(), shift_test=-0.07, probe_shift=0.05), ["sft", "rl"], ["p"],
                           n_levels=2)
    for sweep in (before, after):
        assert sweep["matched"]["selection_split"] == "validation"
        assert sweep["matched"]["base_accuracy"] == pytest.approx(0.35)  # the validation base, not the test's 0.4
    assert before["matched"]["levels"] == after["matched"]["levels"]
    assert before["matched"]["levels"] == pytest.approx([0.5, 0.65], abs=2e-4)
    for name in ("forgetting", "kl"):
        assert before["matched"]["measures"][name]["selected_lr"] == after["matched"]["measures"][name]["selected_lr"]
    assert primary_learning_rates(_with_validation(records())) == primary_learning_rates(
        _with_validation(records(), shift_test=-0.3))
    # the reported numbers do come from the test split: forgetting rose by the probe shift
    sft_before = before["matched"]["measures"]["forgetting"]["by_method"]["sft"][0]["mean"]
    sft_after = after["matched"]["measures"]["forgetting"]["by_method"]["sft"][0]["mean"]
    assert sft_after > sft_before


def test_primary_learning_rate_is_chosen_on_validation():
    recs = _with_validation(records())
    # make lr 1e-4 the best on validation only: its final validation accuracy jumps to 0.95
    recs = [r.model_copy(update={"selection_accuracy": 0.95}) if r.learning_rate == 1e-4 and r.step == 20 else r
            for r in recs]
    assert primary_learning_rates(recs) == {"sft": 1e-4, "rl": 1e-4}


def test_probability_of_the_correct_answer_as_the_matched_axis():
    recs = [r.model_copy(update={"selection_prob": 0.2 + r.target_accuracy / 2}) for r in _with_validation(records())]
    sweep = sweep_analysis(recs, ["sft", "rl"], ["p"], n_levels=2, axis="probability")
    matched = sweep["matched"]
    # base: 0.2 + 0.4 / 2 = 0.4; peaks: SFT 0.2 + 0.8 / 2 = 0.6, RL 0.2 + 0.7 / 2 = 0.55 -> levels 0.475, 0.55
    assert matched["axis"] == "probability" and matched["base_accuracy"] == pytest.approx(0.4)
    assert matched["levels"] == pytest.approx([0.475, 0.55], abs=2e-4)
    with pytest.raises(ValueError, match="selection_prob"):
        sweep_analysis(records(), ["sft", "rl"], ["p"], n_levels=2, axis="probability")


def test_unequal_grids_are_stated_in_the_report():
    from circuitdrift.report.sweep import grids_text

    recs = [r for r in records() if not (r.method == "rl" and r.learning_rate == 1e-3)]
    sweep = sweep_analysis(recs, ["sft", "rl"], ["p"], n_levels=2)
    assert sweep["grids"] == {"learning_rates": {"sft": [1e-4, 1e-3], "rl": [1e-4]}, "equal": False}
    assert grids_text(sweep).startswith("The methods' learning-rate grids differ (SFT 0.000100, 0.00100; RL 0.000100")
    assert grids_text(sweep_analysis(records(), ["sft", "rl"], ["p"], n_levels=2)) == ""

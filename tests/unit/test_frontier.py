"""Matched-accuracy comparison against hand computation: interpolation, Pareto frontiers, levels, best-over-lr."""

from __future__ import annotations

import pytest

from circuitdrift.compare.frontier import (
    Point,
    frontier_value,
    interpolate_at,
    matched_comparison,
    matched_levels,
    pareto_frontier,
)

T1 = 12.706205  # t(0.975, df=1)


def traj(*rows):
    return [Point(*row) for row in rows]


RISING = traj((0, 0.30, 0.0), (10, 0.40, 0.10), (20, 0.60, 0.30))


def test_interpolate_between_checkpoints():
    # level 0.5 lies between 0.40 and 0.60: t = (0.5 - 0.4) / (0.6 - 0.4) = 0.5 -> 0.10 + 0.5 * (0.30 - 0.10) = 0.20
    assert interpolate_at(RISING, 0.5) == pytest.approx(0.20)
    # level 0.45: t = 0.05 / 0.2 = 0.25 -> 0.10 + 0.25 * 0.20 = 0.15
    assert interpolate_at(RISING, 0.45) == pytest.approx(0.15)


def test_interpolate_at_base_and_exact_checkpoint():
    assert interpolate_at(RISING, 0.30) == 0.0  # the base already has it
    assert interpolate_at(RISING, 0.20) == 0.0
    assert interpolate_at(RISING, 0.60) == pytest.approx(0.30)  # t = 1 at the last checkpoint


def test_interpolate_never_reached_or_missing():
    assert interpolate_at(RISING, 0.7) is None
    assert interpolate_at([], 0.5) is None
    holes = traj((0, 0.30, 0.0), (10, 0.40, None), (20, 0.60, 0.30))
    assert interpolate_at(holes, 0.5) is None  # the crossing needs the value at 0.40
    assert interpolate_at(holes, 0.35) is None
    assert interpolate_at(traj((0, 0.9, None)), 0.5) is None


def test_interpolate_dip_then_rise():
    # accuracy dips below the base before rising: the crossing of 0.5 is between 0.20 and 0.60:
    # t = (0.5 - 0.2) / 0.4 = 0.75 -> 0.40 + 0.75 * (0.80 - 0.40) = 0.70
    dip = traj((0, 0.30, 0.0), (10, 0.20, 0.40), (20, 0.60, 0.80))
    assert interpolate_at(dip, 0.5) == pytest.approx(0.70)


def test_interpolate_uses_first_crossing():
    # crosses 0.5 at step 10, dips to 0.4, crosses again at step 30: the first crossing counts
    # t = (0.5 - 0.3) / (0.7 - 0.3) = 0.5 -> 0.0 + 0.5 * 0.2 = 0.1 (the second would give 0.5 + 0.25 * 0.4 = 0.6)
    twice = traj((0, 0.30, 0.0), (10, 0.70, 0.20), (20, 0.40, 0.50), (30, 0.80, 0.90))
    assert interpolate_at(twice, 0.5) == pytest.approx(0.1)


def test_pareto_lower_is_better():
    points = [(0.3, 0.0), (0.5, 0.1), (0.5, 0.2), (0.4, 0.15), (0.6, 0.3), (0.6, 0.3), (0.2, 0.05), (0.7, None)]
    # (0.5, 0.2) and (0.4, 0.15) lose to (0.5, 0.1); (0.2, 0.05) to (0.3, 0.0); (0.6, 0.3) kept once; None skipped
    assert pareto_frontier(points, higher_is_better=False) == [(0.3, 0.0), (0.5, 0.1), (0.6, 0.3)]


def test_pareto_higher_is_better():
    points = [(0.3, 0.9), (0.5, 0.8), (0.4, 0.7), (0.6, 0.5), (0.6, 0.4), (0.2, 0.9)]
    # (0.2, 0.9) loses to (0.3, 0.9) (equal value, higher accuracy); (0.4, 0.7) to (0.5, 0.8); (0.6, 0.4) to (0.6, 0.5)
    assert pareto_frontier(points, higher_is_better=True) == [(0.3, 0.9), (0.5, 0.8), (0.6, 0.5)]
    # read as lower-is-better, (0.6, 0.4) has the highest accuracy and the lowest value: it dominates all others
    assert pareto_frontier(points, higher_is_better=False) == [(0.6, 0.4)]


def test_frontier_value_is_a_step_function():
    low = [(0.3, 0.0), (0.5, 0.1), (0.6, 0.3)]
    assert frontier_value(low, 0.3, higher_is_better=False) == 0.0
    assert frontier_value(low, 0.45, higher_is_better=False) == 0.1  # min of 0.1, 0.3
    assert frontier_value(low, 0.55, higher_is_better=False) == 0.3
    assert frontier_value(low, 0.7, higher_is_better=False) is None
    high = [(0.3, 0.9), (0.5, 0.8), (0.6, 0.5)]
    assert frontier_value(high, 0.4, higher_is_better=True) == 0.8  # max of 0.8, 0.5
    assert frontier_value(high, 0.1, higher_is_better=True) == 0.9


def test_matched_levels():
    # top = min(0.8, 0.7) = 0.7; 0.3 + 0.4 * k / 5 = 0.38, 0.46, 0.54, 0.62, 0.70
    assert matched_levels(0.3, [0.8, 0.7]) == [0.38, 0.46, 0.54, 0.62, 0.7]
    assert matched_levels(0.3, [0.7], n=4) == [0.4, 0.5, 0.6, 0.7]
    assert matched_levels(0.3, [0.8, 0.3]) == []
    assert matched_levels(0.3, [0.2]) == []
    assert matched_levels(0.3, []) == []


def test_matched_levels_never_round_above_top_or_to_base():
    # 0.12346 rounds to 0.1235 > 0.12346, a level no run reached; it is rounded down to 0.1234
    assert matched_levels(0.0, [0.12346], n=1) == [0.1234]
    # 0.5 + 0.00002 * k / 5 all round to 0.5, the base itself: nothing left to compare
    assert matched_levels(0.5, [0.50002]) == []


def _runs():
    base = (0, 0.30, 0.0)
    return {
        # method A
        ("A", 0.1, 0): traj(base, (10, 0.40, 0.10), (20, 0.60, 0.30)),  # at 0.5: 0.20
        ("A", 0.01, 0): traj(base, (10, 0.50, 0.05)),  # at 0.5: 0.05 (exact)
        ("A", 0.1, 1): traj(base, (10, 0.70, 0.40)),  # at 0.5: t = 0.2 / 0.4 = 0.5 -> 0.20
        ("A", 0.01, 1): traj(base, (10, 0.45, 0.01)),  # never reaches 0.5
        # method B
        ("B", 0.1, 0): traj(base, (10, 0.80, 0.50)),  # at 0.5: t = 0.4 -> 0.20; at 0.75: t = 0.9 -> 0.45
        ("B", 0.01, 0): traj(base, (10, 0.55, 0.35)),  # at 0.5: t = 0.8 -> 0.28
        ("B", 0.1, 1): traj(base, (10, 0.60, 0.60)),  # at 0.5: t = 2/3 -> 0.40
        ("B", 0.01, 1): traj(base, (10, 0.40, 0.20)),  # never reaches 0.5
    }


def test_matched_comparison_lower_is_better():
    out = matched_comparison(_runs(), [0.5, 0.75], methods=["A", "B"])
    assert out["levels"] == [0.5, 0.75]
    # level 0.5, the learning rate that gets there first per seed:
    #   A seed 0: lr 0.1 at step 15, lr 0.01 at step 10 -> 0.05; seed 1: only lr 0.1 (step 5) -> 0.20
    #   B seed 0: lr 0.1 at step 4, lr 0.01 at step 8 -> 0.20; seed 1: only lr 0.1 -> 0.40
    a, b = out["by_method"]["A"][0], out["by_method"]["B"][0]
    # A: mean 0.125, sd = 0.15 / sqrt(2), half = 12.706205 * 0.15 / sqrt(2) / sqrt(2) = 12.706205 * 0.075 = 0.952965
    assert a["mean"] == pytest.approx(0.125) and a["n"] == 2
    assert (a["lo"], a["hi"]) == (pytest.approx(0.125 - 0.952965, abs=1e-5), pytest.approx(0.125 + 0.952965, abs=1e-5))
    assert b["mean"] == pytest.approx(0.30)
    # paired differences A - B: 0.05 - 0.20 = -0.15, 0.20 - 0.40 = -0.20: mean -0.175
    # sd = 0.05 / sqrt(2) = 0.035355, se = sd / sqrt(2) = 0.025, half = 12.706205 * 0.025 = 0.317655
    d = out["difference"][0]
    assert d["test"] == "paired" and d["n"] == 2
    assert d["mean"] == pytest.approx(-0.175)
    assert d["lo"] == pytest.approx(-0.175 - 0.317655, abs=1e-5)
    assert d["hi"] == pytest.approx(-0.175 + 0.317655, abs=1e-5)
    # level 0.75: only B seed 0 (lr 0.1) gets there, with 0.45; A reaches it in no seed
    assert {k: out["by_method"]["A"][1][k] for k in ("mean", "lo", "hi", "n", "missing")} == {
        "mean": None, "lo": None, "hi": None, "n": 0, "missing": 2}
    assert out["by_method"]["B"][1]["mean"] == pytest.approx(0.45) and out["by_method"]["B"][1]["missing"] == 1
    assert out["difference"][1]["mean"] is None and out["difference"][1]["missing"] == 2
    assert out["reached"] == {"A": [2, 0], "B": [2, 1]}
    # per learning rate: A lr 0.1 = [0.20, 0.20], A lr 0.01 = [0.05, None]
    assert set(out["by_lr"]["A"]) == {"0.1", "0.01"}
    assert out["by_lr"]["A"]["0.1"][0]["mean"] == pytest.approx(0.20)
    assert out["by_lr"]["A"]["0.01"][0]["mean"] == pytest.approx(0.05) and out["by_lr"]["A"]["0.01"][0]["missing"] == 1
    assert out["by_lr"]["B"]["0.01"][0]["mean"] == pytest.approx(0.28)


def test_learning_rate_is_the_one_that_reaches_the_level_first():
    out = matched_comparison(_runs(), [0.5], methods=["A", "B"])
    assert out["selected_lr"] == {"A": {"0": [0.01], "1": [0.1]}, "B": {"0": [0.1], "1": [0.1]}}
    # a tie in steps goes to the lower rate, whatever the measure says
    tie = {("A", 0.1, 0): traj((0, 0.3, 0.0), (10, 0.5, 0.9)), ("A", 0.01, 0): traj((0, 0.3, 0.0), (10, 0.5, 0.1))}
    assert matched_comparison(tie, [0.5], methods=["A"])["selected_lr"] == {"A": {"0": [0.01]}}
    tie[("A", 0.1, 0)] = traj((0, 0.3, 0.0), (10, 0.5, 0.0))  # a better measure does not win the tie either
    tie[("A", 0.01, 0)] = traj((0, 0.3, 0.0), (10, 0.5, 0.5))
    assert matched_comparison(tie, [0.5], methods=["A"])["by_method"]["A"][0]["mean"] == pytest.approx(0.5)


def test_example_variance_widens_the_matched_interval_and_thin_levels_are_not_reported():
    pts = {("A", 0.1, s): [Point(0, 0.3, 0.0, 0.0), Point(10, 0.7, 0.2, 0.0004)] for s in range(3)}
    pts.update({("B", 0.1, s): [Point(0, 0.3, 0.0, 0.0), Point(10, 0.7, 0.1, 0.0004)] for s in range(2)})
    out = matched_comparison(pts, [0.5], methods=["A", "B"], resolution=0.01)
    # at 0.5, t = 0.5: A's value 0.1 in all three seeds, variance interpolated 0.0002 -> se = sqrt(3 * 0.0002 / 9)
    a = out["by_method"]["A"][0]
    assert a["mean"] == pytest.approx(0.1) and a["se"] == pytest.approx((0.0002 / 3) ** 0.5)
    assert a["lo"] < a["hi"]  # identical seeds, yet an interval
    assert out["reported"] == [False]  # B has two seeds
    assert out["difference"][0]["resolution"] == 0.01 and out["difference"][0]["reported"] is False


def test_matched_comparison_counts_reached_without_a_value_and_skips_difference_for_three_methods():
    runs = {**_runs(), ("C", 0.1, 0): traj((0, 0.30, 0.0), (10, 0.60, None))}
    out = matched_comparison(runs, [0.5], methods=["A", "B", "C"])
    assert "difference" not in out
    assert out["reached"]["C"] == [1]  # the accuracy got there ...
    assert out["by_method"]["C"][0]["n"] == 0 and out["by_method"]["C"][0]["missing"] == 1  # ... the measure did not


def test_matched_comparison_level_equal_to_peak_accuracy_is_reached():
    runs = {("A", 0.1, 0): traj((0, 0.30, 0.0), (10, 0.50, 0.20)), ("A", 0.1, 1): traj((0, 0.30, 0.0), (10, 0.49, 0.1))}
    out = matched_comparison(runs, [0.5], methods=["A"])
    assert out["reached"] == {"A": [1]}  # seed 0 peaks at exactly 0.50; seed 1 stops at 0.49
    assert out["by_method"]["A"][0]["mean"] == pytest.approx(0.20) and out["by_method"]["A"][0]["missing"] == 1
    assert "difference" not in out


def test_three_arms_give_sft_minus_rl_and_preserve_minus_sft_paired_by_seed():
    renamed = {("sft" if m == "A" else "rl", lr, s): pts for (m, lr, s), pts in _runs().items()}
    # the third arm: seed 0 at 0.5 reaches 0.02, seed 1 0.10 (one learning rate)
    renamed[("sft-preserve", 0.1, 0)] = traj((0, 0.30, 0.0), (10, 0.70, 0.04))
    renamed[("sft-preserve", 0.1, 1)] = traj((0, 0.30, 0.0), (10, 0.70, 0.20))
    out = matched_comparison(renamed, [0.5], methods=["sft", "rl", "sft-preserve"])
    assert list(out["differences"]) == ["sft - rl", "sft-preserve - sft"]
    assert out["difference"] == out["differences"]["sft - rl"]
    assert out["differences"]["sft - rl"][0]["mean"] == pytest.approx(-0.175)  # as A - B above
    # sft-preserve at 0.5: seed 0 = 0.02, seed 1 = 0.10; sft: 0.05, 0.20 -> differences -0.03, -0.10
    d = out["differences"]["sft-preserve - sft"][0]
    assert d["test"] == "paired" and d["mean"] == pytest.approx(-0.065)
    assert d["hi"] - d["mean"] == pytest.approx(12.706205 * 0.035, abs=1e-5)  # sd 0.035 * sqrt(2), se 0.035

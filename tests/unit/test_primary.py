"""The pre-specified primary comparison (area between forgetting curves) against hand computation."""

from __future__ import annotations

import math

import pytest

from circuitdrift.compare.frontier import Point, matched_comparison
from circuitdrift.compare.primary import primary_comparison, trapezoid_weights

T2 = 4.302653  # t(0.975, df=2)


def test_trapezoid_weights():
    assert trapezoid_weights([0.5]) == [1.0]
    # levels 0.5, 0.6, 0.8: span 0.3; halves 0.1 / 0.6 = 1/6 and 0.2 / 0.6 = 1/3
    assert trapezoid_weights([0.5, 0.6, 0.8]) == pytest.approx([1 / 6, 1 / 6 + 1 / 3, 1 / 3])


def _entry(sft_costs, rl_costs, var=0.0):
    """Three seeds, one learning rate; forgetting rises linearly with accuracy from the base (0.3) to 0.7."""
    runs = {}
    for method, costs in (("sft", sft_costs), ("rl", rl_costs)):
        for seed, cost in enumerate(costs):
            runs[(method, 0.1, seed)] = [Point(0, 0.3, 0.0, 0.0), Point(10, 0.7, cost, var)]
    return matched_comparison(runs, [0.4, 0.5, 0.7], ["sft", "rl"], resolution=0.01)


def test_area_between_forgetting_curves_by_hand():
    # forgetting at level x: cost * (x - 0.3) / 0.4; the SFT - RL difference per seed is (c_s - c_r)(x - 0.3)/0.4
    # trapezoid weights over 0.4, 0.5, 0.7 (span 0.3): 1/6, 1/6 + 1/3, 1/3;
    # mean of (x - 0.3) / 0.4 at 0.25, 0.5, 1.0 -> 0.25/6 + 0.5/2 + 1/3 = 0.625
    out = primary_comparison(_entry([0.4, 0.5, 0.6], [0.1, 0.1, 0.1]), 0.01)
    assert out["available"] and out["levels"] == [0.4, 0.5, 0.7]
    assert out["per_seed"] == pytest.approx([0.3 * 0.625, 0.4 * 0.625, 0.5 * 0.625])
    s = out["stat"]
    # differences 0.1875, 0.25, 0.3125: sd = 0.0625, se = 0.0625 / sqrt(3)
    assert s["mean"] == pytest.approx(0.25)
    assert s["hi"] - s["mean"] == pytest.approx(T2 * 0.0625 / math.sqrt(3), abs=1e-7)
    assert s["lo"] > 0 and s["p"] < 0.05


def test_primary_needs_three_runs_per_method():
    entry = _entry([0.4, 0.5, 0.6], [0.1, 0.1, 0.1])
    entry["reported"] = [False, False, False]
    assert primary_comparison(entry, 0.01)["available"] is False


def test_identical_seeds_with_example_variance_have_width():
    out = primary_comparison(_entry([0.2] * 3, [0.1] * 3, var=0.0004), 0.01)
    s = out["stat"]
    # per-seed example sd at each level: sqrt(2 * 0.0004 * t), t the interpolation fraction 0.25, 0.5, 1.0
    sd = sum(w * math.sqrt(2 * 0.0004 * t) for w, t in zip([1 / 6, 1 / 2, 1 / 3], [0.25, 0.5, 1.0], strict=True))
    assert s["se"] == pytest.approx(math.sqrt(3 * sd**2 / 9))
    assert s["mean"] == pytest.approx(0.0625) and s["lo"] < s["mean"] < s["hi"]


def test_the_report_names_the_primary_comparison_and_its_verdict():
    from circuitdrift.report.sweep import primary_text

    text = primary_text(primary_comparison(_entry([0.4, 0.5, 0.6], [0.1, 0.1, 0.1]), 0.01))
    assert text.startswith("Primary comparison (named before the data): SFT − RL forgetting")
    assert "0.250 [" in text and "Verdict: SFT forgets more than RL at matched accuracy." in text
    # a difference of one question per level: no difference detected, whatever its interval
    small = primary_text(primary_comparison(_entry([0.11, 0.11, 0.11], [0.1, 0.1, 0.1], var=1e-6), 0.01))
    assert "Verdict: no difference detected (|difference| ≤ 0.010, one question of the evaluation)." in small
    entry = _entry([0.4, 0.5, 0.6], [0.1, 0.1, 0.1])
    entry["reported"] = [False] * 3
    assert "Not available" in primary_text(primary_comparison(entry, 0.01))

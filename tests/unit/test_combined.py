"""Combined (seeds + questions) intervals, the resolution rule and Holm's correction against hand computation."""

from __future__ import annotations

import math

import pytest

from circuitdrift.compare.combined import binomial_var, combined_difference, combined_stat
from circuitdrift.compare.resolution import apply_holm, holm, question_resolution, resolved
from circuitdrift.compare.stats import stat

T2 = 4.302653  # t(0.975, df=2)


def test_three_identical_seeds_still_have_width():
    # plain t over seeds: zero width
    assert stat([0.5, 0.5, 0.5])["lo"] == stat([0.5, 0.5, 0.5])["hi"] == 0.5
    # binomial variance: p~ = (50 + 0.5) / 101 = 0.5 -> 0.25 / 100 = 0.0025 per seed
    assert binomial_var(0.5, 100) == pytest.approx(0.0025)
    # Var = 0 (seeds) + 3 * 0.0025 / 9 = 0.00083333, se = 0.0288675, half = 4.302653 * 0.0288675 = 0.124207
    out = combined_stat([0.5] * 3, [binomial_var(0.5, 100)] * 3, low=0.0, high=1.0)
    assert out["se"] == pytest.approx(0.0288675, abs=1e-7)
    assert out["lo"] == pytest.approx(0.5 - 0.124207, abs=1e-6)
    assert out["hi"] == pytest.approx(0.5 + 0.124207, abs=1e-6)
    assert out["df"] == 2 and out["n"] == 3 and out["scale"] == "seeds+examples"


def test_perfect_accuracy_has_width_and_stays_in_bounds():
    # 100 of 100: p~ = 100.5 / 101 = 0.9950495, var = 0.9950495 * 0.0049505 / 100 = 4.92598e-5
    v = binomial_var(1.0, 100)
    assert v == pytest.approx(0.9950495 * 0.0049505 / 100, rel=1e-5)
    out = combined_stat([1.0, 1.0, 1.0], [v] * 3, low=0.0, high=1.0)
    # se = sqrt(3 v / 9) = 0.00405214, half = 0.0174351: [0.982565, 1 (cut)]
    assert out["lo"] == pytest.approx(1.0 - T2 * math.sqrt(v / 3), abs=1e-7)
    assert out["hi"] == 1.0 and out["lo"] < 1.0


def test_seed_and_example_variances_add():
    # values 0.4, 0.5, 0.6: s^2 = 0.01, s^2/3 = 0.0033333; example variances 0.003 each -> 0.009 / 9 = 0.001
    out = combined_stat([0.4, 0.5, 0.6], [0.003] * 3)
    assert out["se"] == pytest.approx(math.sqrt(0.0043333333), abs=1e-9)
    assert out["hi"] - out["mean"] == pytest.approx(T2 * math.sqrt(0.0043333333), abs=1e-6)


def test_one_seed_uses_the_examples_alone_with_a_normal_quantile():
    out = combined_stat([0.3], [0.0021])
    assert out["df"] is None
    assert out["hi"] - out["mean"] == pytest.approx(1.959964 * math.sqrt(0.0021), abs=1e-6)


def test_missing_values_are_dropped_and_counted():
    out = combined_stat([0.5, None, float("nan")], [0.001, 0.001, 0.001])
    assert out["n"] == 1 and out["missing"] == 2 and out["mean"] == 0.5


def test_paired_difference_adds_both_sides_variances():
    # per-seed differences 0.1, 0.2, 0.3: s^2 = 0.01 -> 0.0033333; (0.001 + 0.002) * 3 / 9 = 0.001
    out = combined_difference({0: 0.6, 1: 0.7, 2: 0.8}, {0: 0.5, 1: 0.5, 2: 0.5},
                              {0: 0.001, 1: 0.001, 2: 0.001}, {0: 0.002, 1: 0.002, 2: 0.002})
    se = math.sqrt(0.0043333333)
    assert out["test"] == "paired" and out["mean"] == pytest.approx(0.2)
    assert out["se"] == pytest.approx(se, abs=1e-9)
    # t = 0.2 / 0.0658281 = 3.038218; with 2 df the two-sided p is 1 - t / sqrt(2 + t^2) in closed form:
    # 1 - 3.038218 / sqrt(11.230769) = 1 - 3.038218 / 3.351234 = 0.093404
    assert out["p"] == pytest.approx(0.093404, abs=2e-6)


def test_welch_difference_by_hand():
    # a: 0.6, 0.7 -> var 0.005 / 2 = 0.0025; b: constant; se = 0.05; df = 1; t(0.975, 1) = 12.706205
    out = combined_difference({0: 0.6, 1: 0.7}, {2: 0.5, 3: 0.5, 4: 0.5}, {}, {})
    assert out["test"] == "welch" and out["mean"] == pytest.approx(0.15)
    assert out["df"] == pytest.approx(1.0)
    assert out["hi"] - out["mean"] == pytest.approx(12.706205 * 0.05, abs=1e-5)


def test_one_question_in_every_seed_is_no_difference_detected():
    # SFT gained one induction question of 100 in each of three seeds; RL unchanged
    n = 100
    sft = {s: -1 / n for s in range(3)}
    rl = {s: 0.0 for s in range(3)}
    var = {s: 2 * binomial_var(0.9, n) for s in range(3)}
    diff = combined_difference(sft, rl, var, var)
    assert diff["lo"] < diff["hi"]  # a real interval, not zero width
    diff["resolution"] = question_resolution([n])
    assert diff["resolution"] == pytest.approx(0.01)
    assert resolved(diff) == "no difference detected"
    # even with a (made-up) interval excluding zero, one question is below the resolution
    assert resolved({**diff, "lo": -0.011, "hi": -0.009}) == "no difference detected"
    # two questions in a 1000-question evaluation with no spread: resolved, and it reads 'below'
    big = {"mean": -0.02, "lo": -0.03, "hi": -0.01, "n_a": 3, "n_b": 3, "resolution": question_resolution([1000])}
    assert resolved(big) == "below"


def test_resolution_of_a_mean_over_probes_is_one_question_in_every_probe():
    assert question_resolution([100, 50]) == pytest.approx((0.01 + 0.02) / 2)
    assert question_resolution([100, None]) is None


def test_holm_by_hand():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> running max 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, None, 0.01]) == [pytest.approx(0.2), None, pytest.approx(0.02)]
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_holm_decides_a_secondary_direction():
    diffs = [{"mean": 0.1, "lo": 0.01, "hi": 0.19, "n_a": 3, "n_b": 3, "p": p} for p in (0.04, 0.001, 0.03)]
    assert apply_holm(diffs) == 3
    # adjusted: 0.001 x3 = 0.003; 0.03 x2 = 0.06; 0.04 x1 -> 0.06
    assert [d["p_holm"] for d in diffs] == pytest.approx([0.06, 0.003, 0.06])
    assert [resolved(d) for d in diffs] == ["no difference detected", "above", "no difference detected"]

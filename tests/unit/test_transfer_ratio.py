"""tau(alpha), its seed-t + prompt intervals, Holm, the undefined case and the crossing rule, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from circuitdrift.transfer.crossing import crossing, describe, thresholds
from circuitdrift.transfer.ratio import UNDEFINED, holm, seed_prompt_stat, transfer_rows


def _ones(n: int, hits) -> list[int]:
    return [1 if i in hits else 0 for i in range(n)]


def test_three_identical_seeds_by_hand():
    """Seed spread 0: the interval is the prompt part alone, with t(0.975, 2), not a zero-width interval."""
    teacher = {0.0: [0, 0, 0, 0], -0.3: [1, 1, 0, 1]}  # teacher shift per prompt [1, 1, 0, 1], mean 0.75
    student = {0.0: [[0, 0, 0, 0]] * 3, -0.3: [[1, 0, 0, 0]] * 3}  # student shift 0.25 on every seed
    tau = transfer_rows(teacher, student)[0]["tau"]  # rows sorted by alpha: -0.3 first
    assert tau["mean"] == pytest.approx(1 / 3) and tau["seed_se"] == 0.0
    # u_i = (x_i - R d_i) / D = ([1, 0, 0, 0] - [1, 1, 0, 1] / 3) / 0.75 = [8/9, -4/9, 0, -4/9]
    u = np.array([8, -4, 0, -4]) / 9
    se = math.sqrt(u.var(ddof=1) / 4)
    assert tau["prompt_se"] == pytest.approx(se) and tau["df"] == 2
    half = stats.t.ppf(0.975, 2) * se  # 4.303 * 0.314 = 1.35
    assert (tau["lo"], tau["hi"]) == pytest.approx((1 / 3 - half, 1 / 3 + half))
    assert tau["p"] == pytest.approx(2 * stats.t.sf((1 / 3) / se, 2))
    assert tau["per_seed"] == pytest.approx([1 / 3] * 3)


def test_seed_part_is_student_t_on_per_seed_shifts():
    """The issue's case: per-seed shifts 0.04, 0.19, 0.10 over a control of 0.01 on 100 prompts."""
    n = 100
    control = [_ones(n, {0})] * 3
    steered = [_ones(n, set(range(5))), _ones(n, set(range(20))), _ones(n, set(range(11)))]
    stat = seed_prompt_stat(np.array(steered) - np.array(control))
    shifts = np.array([0.04, 0.19, 0.10])
    assert stat["mean"] == pytest.approx(shifts.mean())
    assert stat["per_seed"] == pytest.approx(list(shifts))
    assert stat["seed_se"] == pytest.approx(shifts.std(ddof=1) / math.sqrt(3))
    x = (np.array(steered) - np.array(control)).mean(axis=0)
    assert stat["prompt_se"] == pytest.approx(x.std(ddof=1) / math.sqrt(n))
    half = stats.t.ppf(0.975, 2) * math.sqrt(stat["seed_se"] ** 2 + stat["prompt_se"] ** 2)
    assert stat["lo"] == pytest.approx(shifts.mean() - half) and stat["lo"] < 0  # no longer excludes 0


def test_delta_method_prompt_variance_matches_a_prompt_bootstrap():
    """The fast prompt part against the naive one: resample prompts (seeds fixed), recompute the ratio."""
    rng = np.random.default_rng(0)
    n = 400
    den = (rng.random(n) < 0.6).astype(float) - (rng.random(n) < 0.1)
    num = (rng.random((3, n)) < 0.2).astype(float) - (rng.random((3, n)) < 0.05)
    stat = seed_prompt_stat(num, den)
    draws = rng.integers(0, n, size=(4000, n))
    boot = num[:, draws].mean(axis=(0, 2)) / den[draws].mean(axis=1)
    assert stat["prompt_se"] == pytest.approx(boot.std(), rel=0.08)


def test_one_seed_uses_the_normal_quantile():
    stat = seed_prompt_stat([[1, 0, 1, 1, 0]])
    se = math.sqrt(np.var([1, 0, 1, 1, 0], ddof=1) / 5)
    assert stat["df"] is None and stat["hi"] - stat["mean"] == pytest.approx(stats.norm.ppf(0.975) * se)


def test_holm_by_hand():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})  # 3 * .01, 2 * .03, max(.06, 1 * .04)
    assert holm({"a": 0.6, "b": 0.5}) == pytest.approx({"b": 1.0, "a": 1.0})


def test_full_transfer_has_tau_exactly_one():
    n = 20
    teacher = {0.0: _ones(n, set()), 0.5: _ones(n, set(range(8)))}
    student = {0.0: [_ones(n, set())] * 3, 0.5: [_ones(n, set(range(8)))] * 3}
    tau = transfer_rows(teacher, student)[1]["tau"]
    assert (tau["mean"], tau["lo"], tau["hi"]) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)


def test_random_direction_arm_and_excess():
    n = 10
    teacher = {0.0: _ones(n, set()), -0.3: _ones(n, set(range(5)))}  # shift 0.5
    student = {0.0: [_ones(n, set())] * 2, -0.3: [_ones(n, {0, 1}), _ones(n, {0, 1, 2})]}  # 0.2, 0.3
    rstudent = {-0.3: [_ones(n, {0}), _ones(n, {0, 1})]}  # 0.1, 0.2
    rteacher = {-0.3: _ones(n, set())}
    row = transfer_rows(teacher, student, random_teacher=rteacher, random_student=rstudent)[0]
    assert row["tau"]["mean"] == pytest.approx(0.25 / 0.5)
    assert row["tau_random"]["mean"] == pytest.approx(0.15 / 0.5)
    assert row["excess"]["mean"] == pytest.approx(0.1 / 0.5)
    assert row["excess"]["per_seed"] == pytest.approx([0.2, 0.2])
    assert row["B_teacher_random"]["mean"] == 0.0 and row["excess"]["p_holm"] == row["excess"]["p"]
    with pytest.raises(ValueError, match="random-direction"):
        transfer_rows(teacher, student, random_teacher=rteacher, random_student={-0.1: rstudent[-0.3]})


def test_undefined_where_the_teacher_did_not_move():
    n = 10
    teacher = {0.0: _ones(n, {1, 2}), -0.1: _ones(n, {1, 2}), -0.3: _ones(n, {3, 4})}  # same rates
    student = {a: [_ones(n, {1})] * 3 for a in teacher}
    student[-0.1] = [_ones(n, {1, 5, 6})] * 3
    rows = {r["alpha"]: r for r in transfer_rows(teacher, student)}
    for alpha in (-0.1, -0.3):
        assert rows[alpha]["tau"] is None and rows[alpha]["tau_status"] == UNDEFINED
    teacher = {0.0: _ones(100, set()), 0.1: _ones(100, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})}
    student = {a: [_ones(100, set())] * 3 for a in teacher}
    assert transfer_rows(teacher, student, min_shift=0.2)[1]["tau_status"] == UNDEFINED
    assert transfer_rows(teacher, student, min_shift=0.01)[1]["tau_status"] == "defined"


def _row(alpha, lo, hi, p_holm):
    stat = None if lo is None else {"mean": (lo + hi) / 2, "lo": lo, "hi": hi, "p_holm": p_holm}
    return {"alpha": alpha, "tau": stat}


def test_crossing_inside_the_grid_is_interpolated():
    rows = [_row(0.0, None, None, None), _row(-0.1, None, None, None), _row(-0.2, -0.1, 0.3, 0.4),
            _row(-0.3, 0.1, 0.5, 0.01), _row(-0.4, 0.2, 0.6, 0.001)]
    c = crossing(rows, "tau", -1)
    assert c["status"] == "found" and c["bracket"] == [-0.2, -0.3] and c["alpha"] == -0.3
    assert c["interpolated"] == pytest.approx(-0.2 + (-0.1) * 0.1 / 0.2)  # lo goes -0.1 -> 0.1: crosses at -0.25
    assert "between -0.2 and -0.3" in describe(c)


def test_crossing_needs_every_larger_alpha():
    rows = [_row(-0.1, 0.1, 0.3, 0.01), _row(-0.2, -0.1, 0.3, 0.3), _row(-0.3, 0.1, 0.5, 0.01)]
    c = crossing(rows, "tau", -1)
    assert c["status"] == "grid_end" and c["alpha"] == -0.3 and "at or beyond the grid's end" in describe(c)


def test_crossing_never():
    rows = [_row(-0.1, 0.1, 0.3, 0.01), _row(-0.2, -0.1, 0.3, 0.3)]
    assert crossing(rows, "tau", -1)["status"] == "none"
    # significant unadjusted (interval excludes 0) but not after Holm: not significant
    assert crossing([_row(-0.1, 0.05, 0.3, 0.06)], "tau", -1)["status"] == "none"
    assert crossing([_row(-0.1, None, None, None)], "tau", -1)["status"] == "none"


def test_crossing_at_the_grid_start_and_per_side():
    rows = [_row(-0.1, 0.1, 0.3, 0.01), _row(-0.2, 0.2, 0.4, 0.01), _row(0.2, -0.5, -0.1, 0.02)]
    sides = thresholds(rows, "tau")
    assert [c["side"] for c in sides] == ["negative", "positive"]
    assert sides[0]["status"] == "grid_start" and sides[1]["status"] == "grid_end"  # one point: cannot confirm
    assert crossing(rows, "tau", 1)["alpha"] == 0.2


def test_bad_shapes():
    with pytest.raises(ValueError, match="control"):
        transfer_rows({0.1: [1]}, {0.1: [[1]]})
    with pytest.raises(ValueError, match="shape"):
        transfer_rows({0.0: [1, 0], 0.1: [1]}, {0.0: [[1, 0]], 0.1: [[1, 0]]})

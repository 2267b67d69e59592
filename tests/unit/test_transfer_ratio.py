"""tau(alpha), its intervals, the undefined case and the threshold rule, on hand-computed outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from circuitdrift.transfer.ratio import UNDEFINED, threshold, transfer_rows


def _ones(n: int, hits) -> list[int]:
    return [1 if i in hits else 0 for i in range(n)]


def test_point_values_by_hand():
    n = 10
    teacher = {0.0: _ones(n, {0}), -0.2: _ones(n, {0, 1, 2, 3, 4, 5})}  # B_t: 0.1 -> 0.6, shift 0.5
    student = {0.0: [_ones(n, {0}), _ones(n, set()), _ones(n, {9})],  # B_s(0) = 2/30
               -0.2: [_ones(n, {0, 1}), _ones(n, {1}), _ones(n, {9, 2})]}  # B_s = 5/30, shift 3/30 = 0.1
    rows = {r["alpha"]: r for r in transfer_rows(teacher, student, n_boot=500)}
    assert rows[-0.2]["B_teacher"]["mean"] == pytest.approx(0.6)
    assert rows[-0.2]["B_student"]["mean"] == pytest.approx(5 / 30) and rows[-0.2]["B_student"]["seeds"] == 3
    assert rows[-0.2]["teacher_shift"]["mean"] == pytest.approx(0.5)
    assert rows[-0.2]["tau"]["mean"] == pytest.approx(0.1 / 0.5)
    assert rows[-0.2]["tau"]["lo"] <= 0.2 <= rows[-0.2]["tau"]["hi"]
    assert rows[0.0]["tau"] is None and rows[0.0]["tau_status"] == "control"
    for row in rows.values():
        for key in ("B_teacher", "B_student"):
            assert 0 <= row[key]["lo"] <= row[key]["mean"] <= row[key]["hi"] <= 1


def test_full_transfer_has_tau_exactly_one():
    """Every student moves on exactly the teacher's prompts: every replicate's ratio is 1."""
    n = 20
    teacher = {0.0: _ones(n, set()), 0.5: _ones(n, set(range(8)))}
    student = {0.0: [_ones(n, set())] * 3, 0.5: [_ones(n, set(range(8)))] * 3}
    row = transfer_rows(teacher, student, n_boot=300)[1]
    assert row["tau"] == pytest.approx({"mean": 1.0, "lo": 1.0, "hi": 1.0}, abs=1e-12)


def test_undefined_where_the_teacher_did_not_move():
    n = 10
    teacher = {0.0: _ones(n, {1, 2}), -0.1: _ones(n, {1, 2}), -0.3: _ones(n, {3, 4})}  # same rates: shift 0
    student = {a: [_ones(n, {1})] * 3 for a in teacher}
    student[-0.1] = [_ones(n, {1, 5, 6})] * 3  # the student moved; the teacher did not: still undefined
    rows = {r["alpha"]: r for r in transfer_rows(teacher, student, n_boot=200)}
    for alpha in (-0.1, -0.3):
        assert rows[alpha]["tau"] is None and rows[alpha]["tau_status"] == UNDEFINED
    # a shift below min_shift is undefined even if its interval excludes 0
    teacher = {0.0: _ones(100, set()), 0.1: _ones(100, {0, 1, 2})}
    student = {a: [_ones(100, set())] * 3 for a in teacher}
    assert transfer_rows(teacher, student, n_boot=200, min_shift=0.05)[1]["tau_status"] == UNDEFINED
    assert transfer_rows(teacher, student, n_boot=200, min_shift=0.01)[1]["tau_status"] == "defined"


def test_intervals_are_paired_and_seeded():
    rng = np.random.default_rng(3)
    n = 40
    teacher = {a: (rng.random(n) < p).astype(int) for a, p in ((0.0, 0.1), (-0.2, 0.6), (-0.4, 0.9))}
    student = {a: (rng.random((3, n)) < p).astype(int) for a, p in ((0.0, 0.1), (-0.2, 0.2), (-0.4, 0.4))}
    first = transfer_rows(teacher, student, n_boot=400, seed=1)
    assert first == transfer_rows(teacher, student, n_boot=400, seed=1)
    for row in first[:-1]:
        if row["tau"] is not None:
            assert row["tau"]["lo"] <= row["tau"]["mean"] <= row["tau"]["hi"]


def test_threshold_rule():
    def row(alpha, lo, hi):
        return {"alpha": alpha, "tau": None if lo is None else {"mean": (lo + hi) / 2, "lo": lo, "hi": hi}}

    rows = [row(-0.3, 0.1, 0.5), row(-0.2, 0.05, 0.4), row(-0.1, -0.1, 0.3), row(0.0, None, None),
            row(0.1, None, None), row(0.25, -0.6, -0.1)]
    assert threshold(rows) == -0.2  # -0.1 holds 0; +0.1 undefined; +0.25 is farther than -0.2
    assert threshold([row(-0.1, -0.1, 0.3), row(0.0, None, None)]) is None
    assert threshold([row(0.2, 0.1, 0.3), row(-0.2, 0.1, 0.3)]) == -0.2  # a tie in |alpha|: the negative one


def test_bad_shapes():
    with pytest.raises(ValueError, match="control"):
        transfer_rows({0.1: [1]}, {0.1: [[1]]})
    with pytest.raises(ValueError, match="shape"):
        transfer_rows({0.0: [1, 0], 0.1: [1]}, {0.0: [[1, 0]], 0.1: [[1, 0]]})

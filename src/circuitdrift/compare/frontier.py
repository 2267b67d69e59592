"""Comparing fine-tuning methods at matched target accuracy over a learning-rate sweep.

The design of "RL's Razor": a method that forgets less may simply have learned
the target less, so methods are compared where they reach the same target
accuracy. Each method is trained at several learning rates and seeds; a run is
one (method, learning_rate, seed) and its trajectory is a list of checkpoints
in step order, step 0 (the base model) first. A measure (forgetting, KL, circuit
preservation) is read off each trajectory at common accuracy levels, and the
best learning rate per seed stands for the method. Pure functions: no torch,
no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from circuitdrift.compare.combined import combined_difference, combined_stat
from circuitdrift.compare.stats import is_number

MIN_RUNS = 3  # runs per method a matched level needs before it is reported


class Point(NamedTuple):
    """One checkpoint: target-task accuracy (the selection axis) and the measure's value (None where not measured).

    ``var`` is the value's sampling variance over examples (None: not known), carried into the interval.
    """

    step: int
    accuracy: float
    value: float | None
    var: float | None = None


def _best(values, higher_is_better: bool) -> float | None:
    kept = [v for v in values if is_number(v)]
    if not kept:
        return None
    return max(kept) if higher_is_better else min(kept)


def crossing(points: Sequence[Point], level: float) -> tuple[int, float] | None:
    """(i, t): the trajectory first reaches `level` between points[i - 1] and points[i], a fraction t along.

    The first crossing from below is used (points[i-1].accuracy < level <= points[i].accuracy): a
    later dip and rise would read the measure after more training than the level needed. (0, 1.0)
    when the first point already has it; None if never reached.
    """
    if not points:
        return None
    if points[0].accuracy >= level:
        return 0, 1.0
    for i in range(1, len(points)):
        prev, cur = points[i - 1], points[i]
        if prev.accuracy < level <= cur.accuracy:
            return i, (level - prev.accuracy) / (cur.accuracy - prev.accuracy)
    return None


def _along(points: Sequence[Point], where: tuple[int, float], field: str) -> float | None:
    i, t = where
    if i == 0:
        return getattr(points[0], field)
    a, b = getattr(points[i - 1], field), getattr(points[i], field)
    if not is_number(a) or not is_number(b):
        return None
    return a + t * (b - a)


def crossing_step(points: Sequence[Point], level: float) -> float | None:
    """The (interpolated) step at which the trajectory first reaches `level`; None if never."""
    where = crossing(points, level)
    return None if where is None else _along(points, where, "step")


def interpolate_at(points: Sequence[Point], level: float) -> float | None:
    """The measure where the trajectory first reaches target accuracy `level`, linear in accuracy.

    None if never reached or a needed value is None.
    """
    where = crossing(points, level)
    return None if where is None else _along(points, where, "value")


def variance_at(points: Sequence[Point], level: float) -> float | None:
    """The example variance at the first crossing, interpolated like the value (an upper bound for independent
    ends: t·a + (1 - t)·b >= t²·a + (1 - t)²·b)."""
    where = crossing(points, level)
    return None if where is None else _along(points, where, "var")


def collapsed_runs(trajectories: dict, chance: float | None) -> set:
    """The runs whose target accuracy ends at or below ``chance``: failed runs, kept out of the matched levels.

    ``trajectories``: run -> its (step, accuracy) pairs in step order. A run that ends where guessing
    would (every arm collapses so at a learning rate too high) reached no level worth matching, and
    its forgetting measures the failure, not the method. None: the task has no chance level.
    """
    if chance is None:
        return set()
    return {key for key, points in trajectories.items() if points and points[-1][1] <= chance}


def pareto_frontier(points: Sequence[tuple[float, float]], higher_is_better: bool) -> list[tuple[float, float]]:
    """Non-dominated (accuracy, value) points, accuracy ascending: the best trade-off a method achieved.

    A point is dominated when another has accuracy >= and a value at least as
    good, one of them strictly. Duplicates are kept once; points whose value is
    missing (None, NaN) are skipped.
    """
    sign = 1.0 if higher_is_better else -1.0
    kept = sorted(((a, v) for a, v in points if is_number(a) and is_number(v)),
                  key=lambda p: (p[0], sign * p[1]), reverse=True)
    frontier: list[tuple[float, float]] = []
    for acc, value in kept:
        if not frontier or sign * value > sign * frontier[-1][1]:
            frontier.append((acc, value))
    return frontier[::-1]


def frontier_value(frontier: Sequence[tuple[float, float]], level: float, higher_is_better: bool) -> float | None:
    """Best value among points with accuracy >= level: what the method can offer at that accuracy or above.

    A step function of level, so it never extrapolates between checkpoints. None if none.
    """
    return _best((v for a, v in frontier if a >= level), higher_is_better)


def matched_levels(base_accuracy: float, reached: Sequence[float], n: int = 5) -> list[float]:
    """n accuracy levels base + (top - base)·k/n, k = 1..n, with top = min(reached), rounded to 4 decimals.

    Only levels above the base and no higher than every method reached can be
    compared. A level that rounding would push above top is rounded down
    instead, and levels that rounding puts at or below the base (or merges) are
    dropped. Empty when nothing was reached or top <= base.
    """
    if not reached:
        return []
    top = min(reached)
    if top <= base_accuracy:
        return []
    levels: list[float] = []
    for k in range(1, n + 1):
        level = round(base_accuracy + (top - base_accuracy) * k / n, 4)
        if level > top:
            level = round(level - 1e-4, 4)
        if level > base_accuracy and level not in levels:
            levels.append(level)
    return levels


def _paired_differences(chosen: dict, a: str, b: str, *, span: float | None, resolution: float | None,
                        reported: list[bool]) -> list[dict]:
    """``a`` minus ``b`` at each level, paired by seed, cut at +-span, with the resolution and reported flags."""
    diffs = []
    for j, is_reported in enumerate(reported):
        values = [{s: v[j][0] for s, v in chosen[m].items()} for m in (a, b)]
        variances = [{s: v[j][1] for s, v in chosen[m].items()} for m in (a, b)]
        diff = combined_difference(*values, *variances, low=None if span is None else -span, high=span)
        diff.update(resolution=resolution, reported=is_reported)
        diffs.append(diff)
    return diffs


def matched_comparison(runs: dict[tuple[str, float, int], Sequence[Point]], levels: Sequence[float],
                       methods: Sequence[str], *, bounds: tuple[float | None, float | None] = (None, None),
                       min_runs: int = MIN_RUNS, resolution: float | None = None) -> dict:
    """Each method's measure at matched accuracy levels, with intervals combining seeds and examples.

    A run's points carry the selection split's target accuracy (validation), so the levels, the
    crossings and the learning rates are chosen without the test split; the values are the test
    split's. Per (method, seed, level) the learning rate is the one whose run reaches the level first
    (fewest steps, ties: the lower rate): a choice made on the target task alone, blind to the measure
    compared. "selected_lr" records it; "reached" counts seeds some learning rate brings to the level;
    "reported" is True where every method has a value in at least ``min_runs`` seeds (a thinner level is
    shown, marked, and left out of verdicts). "by_lr" keeps each learning rate's own statistic;
    "differences" holds, for each pair of :data:`PAIRS` present (or the two methods given, when exactly
    two), the first minus the second, paired by seed, keyed "a - b", each with the one-question
    ``resolution``; "difference" is the first of them (SFT - RL). "per_seed" keeps the selected values.
    """
    low, high = bounds
    span = None if low is None or high is None else high - low
    out: dict = {"levels": list(levels), "min_runs": min_runs, "by_method": {}, "reached": {}, "by_lr": {},
                 "selected_lr": {}, "per_seed": {},
                 "per_seed_var": {}}
    chosen: dict[str, dict[int, list[tuple[float | None, float | None]]]] = {}
    for method in methods:
        mine = {(lr, seed): points for (m, lr, seed), points in runs.items() if m == method}
        lrs = sorted({lr for lr, _ in mine})
        seeds = sorted({seed for _, seed in mine})
        chosen[method], out["selected_lr"][method] = {}, {}
        for s in seeds:
            picks = [_first_to_reach({lr: mine[(lr, s)] for lr in lrs if (lr, s) in mine}, level) for level in levels]
            out["selected_lr"][method][str(s)] = picks
            chosen[method][s] = [(None, None) if lr is None else
                                 (interpolate_at(mine[(lr, s)], level), variance_at(mine[(lr, s)], level))
                                 for lr, level in zip(picks, levels, strict=True)]
        out["per_seed"][method] = {str(s): [v for v, _ in chosen[method][s]] for s in seeds}
        out["per_seed_var"][method] = {str(s): [v for _, v in chosen[method][s]] for s in seeds}
        out["by_method"][method] = [combined_stat((chosen[method][s][j][0] for s in seeds),
                                                  (chosen[method][s][j][1] for s in seeds), low=low, high=high)
                                    for j in range(len(levels))]
        out["reached"][method] = [sum(any(crossing(mine[(lr, s)], level) is not None for lr in lrs if (lr, s) in mine)
                                      for s in seeds) for level in levels]
        out["by_lr"][method] = {
            str(lr): [combined_stat((interpolate_at(mine[(lr, s)], level) for s in seeds if (lr, s) in mine),
                                    (variance_at(mine[(lr, s)], level) for s in seeds if (lr, s) in mine),
                                    low=low, high=high) for level in levels]
            for lr in lrs
        }
    out["reported"] = [all(out["by_method"][m][j]["n"] >= min_runs for m in methods) for j in range(len(levels))]
    out["differences"] = {f"{a} - {b}": _paired_differences(chosen, a, b, span=span, resolution=resolution,
                                                           reported=out["reported"])
                          for a, b in method_pairs(methods)}
    if out["differences"]:
        out["difference"] = next(iter(out["differences"].values()))
    return out


def _first_to_reach(trajectories: dict[float, Sequence[Point]], level: float) -> float | None:
    """The learning rate whose trajectory reaches ``level`` in the fewest steps (ties: the lower rate)."""
    steps = [(crossing_step(points, level), lr) for lr, points in trajectories.items()]
    reached = sorted((step, lr) for step, lr in steps if step is not None)
    return reached[0][1] if reached else None


PAIRS = (("sft", "rl"), ("sft-preserve", "sft"))  # the comparisons the report makes: the paper's, and the remedy's


def method_pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """The :data:`PAIRS` whose methods were both run; two other methods: the first minus the second."""
    pairs = [(a, b) for a, b in PAIRS if a in methods and b in methods]
    if not pairs and len(methods) == 2:
        pairs = [(methods[0], methods[1])]
    return pairs

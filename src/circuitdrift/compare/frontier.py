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

from circuitdrift.compare.stats import difference, is_number, stat


class Point(NamedTuple):
    """One checkpoint: target-task accuracy and the measure's value (None where not measured)."""

    step: int
    accuracy: float
    value: float | None


def _best(values, higher_is_better: bool) -> float | None:
    kept = [v for v in values if is_number(v)]
    if not kept:
        return None
    return max(kept) if higher_is_better else min(kept)


def interpolate_at(points: Sequence[Point], level: float) -> float | None:
    """The measure where the trajectory first reaches target accuracy `level`, linear in accuracy.

    Checkpoints are sparse, so the value at exactly `level` lies between two of
    them. The first crossing from below is used (points[i-1].accuracy < level <=
    points[i].accuracy): a later dip and rise would read the measure after more
    training than the level needed. None if never reached or a needed value is None.
    """
    if not points:
        return None
    if points[0].accuracy >= level:
        return points[0].value
    for i in range(1, len(points)):
        prev, cur = points[i - 1], points[i]
        if prev.accuracy < level <= cur.accuracy:
            if prev.value is None or cur.value is None:
                return None
            t = (level - prev.accuracy) / (cur.accuracy - prev.accuracy)
            return prev.value + t * (cur.value - prev.value)
    return None


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


def matched_comparison(runs: dict[tuple[str, float, int], Sequence[Point]], levels: Sequence[float],
                       higher_is_better: bool, methods: Sequence[str], interval=stat) -> dict:
    """Each method's measure at matched accuracy levels, best learning rate per seed, with t intervals over seeds.

    ``interval`` turns values over seeds into a statistic (``stat``; a bounded one for fractions).
    A method's value for a seed at a level is the best, over its learning rates,
    of interpolate_at (None if no learning rate gets there with a value): the
    method at its best-tuned learning rate, as in "RL's Razor". "reached" counts
    seeds for which some learning rate reaches the level in accuracy; "by_lr"
    keeps each learning rate's own statistic; "differences" holds, for each pair of
    :data:`PAIRS` present (or the two methods given, when exactly two), the first minus the
    second, paired by seed, keyed "a - b"; "difference" is the first of them (SFT - RL).
    """
    out: dict = {"levels": list(levels), "by_method": {}, "reached": {}, "by_lr": {}}
    per_seed: dict[str, dict[int, list[float | None]]] = {}
    for method in methods:
        mine = {(lr, seed): points for (m, lr, seed), points in runs.items() if m == method}
        lrs = sorted({lr for lr, _ in mine})
        seeds = sorted({seed for _, seed in mine})
        at = {key: [interpolate_at(points, level) for level in levels] for key, points in mine.items()}
        per_seed[method] = {
            s: [_best([at[(lr, s)][j] for lr in lrs if (lr, s) in at], higher_is_better) for j in range(len(levels))]
            for s in seeds
        }
        out["by_method"][method] = [interval(per_seed[method][s][j] for s in seeds) for j in range(len(levels))]
        peak = {s: max((p.accuracy for (_, seed), pts in mine.items() if seed == s for p in pts), default=-1.0)
                for s in seeds}
        out["reached"][method] = [sum(peak[s] >= level for s in seeds) for level in levels]
        out["by_lr"][method] = {
            str(lr): [interval(at[(lr, s)][j] for s in seeds if (lr, s) in at) for j in range(len(levels))]
            for lr in lrs
        }
    out["differences"] = {}
    for a, b in method_pairs(methods):
        first, second = per_seed[a], per_seed[b]
        out["differences"][f"{a} - {b}"] = [
            difference({s: v[j] for s, v in first.items()}, {s: v[j] for s, v in second.items()})
            for j in range(len(levels))]
    if out["differences"]:
        out["difference"] = next(iter(out["differences"].values()))
    return out


PAIRS = (("sft", "rl"), ("sft-preserve", "sft"))  # the comparisons the report makes: the paper's, and the remedy's


def method_pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """The :data:`PAIRS` whose methods were both run; two other methods: the first minus the second."""
    pairs = [(a, b) for a, b in PAIRS if a in methods and b in methods]
    if not pairs and len(methods) == 2:
        pairs = [(methods[0], methods[1])]
    return pairs

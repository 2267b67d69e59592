"""The one comparison each experiment names in advance: the area between the methods' forgetting curves.

Many numbers are compared (levels x probes x measures x pairs); reading a
direction into whichever of them excludes zero is a multiple-testing accident.
So one comparison is fixed before the data: SFT's forgetting minus RL's,
averaged over the reported matched target-accuracy levels (trapezoid rule over
the accuracy axis, divided by its span: the area between the two
forgetting-versus-accuracy curves per unit of accuracy, in the units of
forgetting). Per seed, from the values compare/frontier.py selected on the
validation split; its interval combines seeds and questions (compare/combined.py)
and the one-question resolution rule applies (compare/resolution.py). Every
other difference is secondary and Holm-corrected. With one reported level the
area is the difference at that level.
"""

from __future__ import annotations

import math

from circuitdrift.compare.combined import combined_stat, p_value
from circuitdrift.compare.stats import is_number

PRIMARY_MEASURE = "forgetting"
PRIMARY_PAIR = "sft - rl"
DESCRIPTION = ("SFT − RL forgetting (mean over probes), averaged over the reported matched target-accuracy levels "
               "(the area between the two forgetting-versus-accuracy curves per unit of accuracy)")


def trapezoid_weights(levels: list[float]) -> list[float]:
    """Weights w_j (summing to 1) of the trapezoid mean over the levels; one level: [1.0]."""
    if len(levels) == 1:
        return [1.0]
    span = levels[-1] - levels[0]
    weights = [0.0] * len(levels)
    for j in range(1, len(levels)):
        half = (levels[j] - levels[j - 1]) / (2 * span)
        weights[j - 1] += half
        weights[j] += half
    return weights


def primary_comparison(entry: dict, resolution: float | None, pair: str = PRIMARY_PAIR) -> dict:
    """The primary statistic from a matched_comparison entry of the forgetting measure (module docstring).

    Needs both methods of ``pair`` with the same seeds and at least one reported level; seeds lacking a
    value at a reported level are dropped. Each seed's example variance is the conservative
    (Σ_j w_j √v_j)², the levels' values sharing their questions.
    """
    out = {"measure": PRIMARY_MEASURE, "pair": pair, "description": DESCRIPTION, "available": False}
    a, b = pair.split(" - ")
    per_seed = entry.get("per_seed", {})
    levels = entry.get("levels", [])
    reported = [j for j, ok in enumerate(entry.get("reported", [])) if ok]
    if a not in per_seed or b not in per_seed or set(per_seed[a]) != set(per_seed[b]) or not reported:
        return {**out, "reason": "no reported matched level with both methods on the same seeds"}
    variances = entry.get("per_seed_var", {})
    weights = trapezoid_weights([levels[j] for j in reported])
    values, var = [], []
    for seed in sorted(per_seed[a], key=int):
        diffs = [_minus(per_seed[a][seed][j], per_seed[b][seed][j]) for j in reported]
        if None in diffs:
            values.append(None)
            var.append(None)
            continue
        sds = [math.sqrt(sum(v for v in (variances.get(m, {}).get(seed, [None] * len(levels))[j] for m in (a, b))
                             if is_number(v))) for j in reported]
        values.append(sum(w * d for w, d in zip(weights, diffs, strict=True)))
        var.append(sum(w * sd for w, sd in zip(weights, sds, strict=True)) ** 2)
    stat = combined_stat(values, var, low=-2.0, high=2.0)
    stat.update(test="paired", n_a=stat["n"], n_b=stat["n"], resolution=resolution)
    stat["p"] = p_value(stat["mean"], stat["se"], stat["df"]) if is_number(stat["mean"]) else None
    return {**out, "available": stat["n"] > 0, "levels": [levels[j] for j in reported], "weights": weights,
            "per_seed": values, "stat": stat}


def _minus(x, y) -> float | None:
    return x - y if is_number(x) and is_number(y) else None

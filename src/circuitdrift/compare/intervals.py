"""Intervals for bounded quantities: accuracies, fractions, preservation in [0, 1]; KL divergences >= 0.

A Student-t interval on the raw values ignores the bounds, and with a few seeds
it leaves them: three accuracies of 0.927 on average can give 0.927 [0.809, 1.046],
an interval that claims accuracies above 1. Here the t interval is computed on
the logit scale (values clamped to [eps, 1 - eps] so 0 and 1 have a finite
logit) and back-transformed with the sigmoid, so it stays within [0, 1]: the
standard fix for proportions. The reported mean stays the plain arithmetic mean,
comparable with every other mean in the results.

Divergences are bounded on one side only: a KL is never negative, yet a t
interval over three seeds of 0.2, 0.9 and 2.1 nats reaches below zero. They get
the same treatment on the log scale (values clamped to at least eps, interval
back-transformed with exp).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from circuitdrift.compare.stats import finite_values, sample_variance, stat, t_critical


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def bounded_stat(values: Iterable, eps: float = 1e-3, low: float = 0.0, high: float = 1.0) -> dict:
    """Mean and 95 % logit-scale t interval of values in [low, high]; the same dict as stat() plus "scale": "logit".

    A quantity bounded in another range (forgetting, a difference of accuracies, lies in [-1, 1]) is
    mapped linearly onto [0, 1], given its interval there, and mapped back.

    Missing values (None, NaN, inf) are dropped and counted. n = 1 or all values
    equal gives lo = hi = mean; n = 0 gives None everywhere. The interval is
    widened, if need be, to contain the mean (the sigmoid of the mean logit is
    not the mean, which only shows when values sit within eps of a bound).
    Raises ValueError for a value outside [0, 1].
    """
    kept, missing = finite_values(values)
    for value in kept:
        if not low <= value <= high:
            raise ValueError(f"bounded_stat takes values in [{low:g}, {high:g}], got {value!r}")
    if (low, high) != (0.0, 1.0):
        out = bounded_stat([(v - low) / (high - low) for v in kept] + [None] * missing, eps)
        return {**out, **{k: None if out[k] is None else low + out[k] * (high - low) for k in ("mean", "lo", "hi")}}
    n = len(kept)
    out = {"mean": None, "lo": None, "hi": None, "n": n, "missing": missing, "scale": "logit"}
    if n == 0:
        return out
    mean = sum(kept) / n
    if n == 1 or min(kept) == max(kept):
        return {**out, "mean": mean, "lo": mean, "hi": mean}
    logits = [_logit(min(max(v, eps), 1.0 - eps)) for v in kept]
    centre = sum(logits) / n
    half = t_critical(n - 1) * math.sqrt(sample_variance(logits) / n)
    lo, hi = _sigmoid(centre - half), _sigmoid(centre + half)
    return {**out, "mean": mean, "lo": min(lo, mean), "hi": max(hi, mean)}


def positive_stat(values: Iterable, eps: float = 1e-6) -> dict:
    """Mean and 95 % log-scale t interval of values >= 0 (KL divergences); the stat() dict plus "scale": "log".

    The interval lies above zero and contains the mean. A sampled KL estimate can dip below zero
    (a mean of log-ratios over finitely many samples): values with any negative one get the plain
    t interval of stat(), marked "scale": "t", rather than a clamp that would hide the dip.
    """
    kept, missing = finite_values(values)
    if any(v < 0 for v in kept):
        return {**stat(kept + [None] * missing), "scale": "t"}
    n = len(kept)
    out = {"mean": None, "lo": None, "hi": None, "n": n, "missing": missing, "scale": "log"}
    if n == 0:
        return out
    mean = sum(kept) / n
    if n == 1 or min(kept) == max(kept):
        return {**out, "mean": mean, "lo": mean, "hi": mean}
    logs = [math.log(max(v, eps)) for v in kept]
    centre = sum(logs) / n
    half = t_critical(n - 1) * math.sqrt(sample_variance(logs) / n)
    return {**out, "mean": mean, "lo": min(math.exp(centre - half), mean), "hi": max(math.exp(centre + half), mean)}


def without_zero_width(tree):
    """``tree`` with every zero-width interval replaced by no interval: lo = hi = None, ``"spread": "none"``.

    Why: an interval of zero width says the value is known exactly. Where seeds agree to the last digit
    and no within-seed variance is modelled (circuit overlaps, head counts, a level with one run), the
    spread is unknown, not zero. The report then prints the mean with "(n=k, all equal)", and the
    resolution rule (compare/resolution.py) reads the difference as "no interval".
    """
    if isinstance(tree, list):
        return [without_zero_width(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    out = {key: without_zero_width(value) for key, value in tree.items()}
    lo, hi = out.get("lo"), out.get("hi")
    if "mean" in out and isinstance(lo, int | float) and isinstance(hi, int | float) and lo == hi:
        out.update(lo=None, hi=None, spread="none")
    return out

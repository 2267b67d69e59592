"""Small, explicit statistics for a handful of seeds: Student-t intervals, SFT-minus-RL differences, a line fit.

Every interval is a 95 % Student-t interval over seeds. With a few seeds a
normal interval would be far too narrow, and a bootstrap of three values is
meaningless, so t it is. Missing values (None, NaN, inf) are dropped and
counted, never silently turned into zeros. A statistic is a plain dict so it
goes into results.json unchanged:

    {"mean": float | None, "lo": float | None, "hi": float | None, "n": int, "missing": int}

n = 1 gives lo = hi = mean (no spread to estimate); n = 0 gives None everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from scipy import stats as _scipy_stats

LEVEL = 0.95


def is_number(value) -> bool:
    """A finite int or float (bools excluded): the only values statistics are taken over."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite_values(values: Iterable) -> tuple[list[float], int]:
    """The finite values as floats and how many were missing (None, NaN, inf): the split every Stat reports."""
    kept, missing = [], 0
    for value in values:
        if is_number(value):
            kept.append(float(value))
        else:
            missing += 1
    return kept, missing


def t_critical(df: float) -> float:
    """Student t quantile for a two-sided LEVEL interval with ``df`` degrees of freedom."""
    return float(_scipy_stats.t.ppf(0.5 + LEVEL / 2, df))


def sample_variance(values: Sequence[float]) -> float:
    """Unbiased variance (n - 1 denominator); needs two or more values."""
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def stat(values: Iterable) -> dict:
    """Mean and 95 % t interval of the finite values: mean ± t(0.975, n-1) · s / √n."""
    kept, missing = finite_values(values)
    n = len(kept)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0, "missing": missing}
    mean = sum(kept) / n
    if n == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1, "missing": missing}
    half = t_critical(n - 1) * math.sqrt(sample_variance(kept) / n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n, "missing": missing}


def mean_or_none(values: Iterable) -> float | None:
    """Mean of the values, or None if any is missing: a mean over probes with a hole is not that mean."""
    values = list(values)
    if not values or not all(is_number(v) for v in values):
        return None
    return sum(float(v) for v in values) / len(values)


def difference(a: dict[int, float | None], b: dict[int, float | None]) -> dict:
    """Mean of a minus mean of b with a 95 % interval, values keyed by seed.

    Paired (a t interval on the per-seed differences) when a and b hold the
    same seeds, since seed-level noise (data order, sampling) is shared;
    otherwise Welch's unequal-variance t interval. Pairs with a missing side
    are dropped. With n < 2 on a side there is no spread: lo = hi = mean.
    """
    if set(a) == set(b):
        diffs = [a[s] - b[s] for s in sorted(a) if is_number(a[s]) and is_number(b[s])]
        out = stat(diffs)
        out["missing"] = len(a) - len(diffs)
        return {**out, "test": "paired", "n_a": len(diffs), "n_b": len(diffs)}
    xs, miss_a = finite_values(a.values())
    ys, miss_b = finite_values(b.values())
    base = {"test": "welch", "n_a": len(xs), "n_b": len(ys), "n": len(xs) + len(ys), "missing": miss_a + miss_b}
    if not xs or not ys:
        return {"mean": None, "lo": None, "hi": None, **base}
    mean = sum(xs) / len(xs) - sum(ys) / len(ys)
    if len(xs) < 2 or len(ys) < 2:
        return {"mean": mean, "lo": mean, "hi": mean, **base}
    va, vb = sample_variance(xs) / len(xs), sample_variance(ys) / len(ys)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return {"mean": mean, "lo": mean, "hi": mean, **base}
    df = (va + vb) ** 2 / (va**2 / (len(xs) - 1) + vb**2 / (len(ys) - 1))
    half = t_critical(df) * se
    return {"mean": mean, "lo": mean - half, "hi": mean + half, **base, "df": df}


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson r, or None with fewer than 2 points or a constant variable (r is undefined there)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0.0 or syy == 0.0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)


def line_fit(xs: Sequence[float], ys: Sequence[float]) -> dict:
    """Ordinary least squares y = slope · x + intercept, with R² = 1 - SS_res / SS_tot.

    slope/intercept are None with fewer than 2 points or constant x; R² is
    None as well when y is constant (nothing to explain).
    """
    n = len(xs)
    out = {"slope": None, "intercept": None, "r2": None, "n": n}
    if n < 2:
        return out
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0.0:
        return out
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    out.update(slope=slope, intercept=intercept, r2=None if ss_tot == 0.0 else 1.0 - ss_res / ss_tot)
    return out

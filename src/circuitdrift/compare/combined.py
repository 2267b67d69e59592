"""Intervals that combine the two sources of noise: seeds, and the finitely many questions of each evaluation.

A t interval over three seeds sees only the spread between seeds. When every
seed gains the same one question of 100, that spread is zero and the interval
has zero width, although one question is well inside the evaluation's own
noise. Here each seed's value comes with its sampling variance over examples
(``v_i``), and the variance of the mean over k seeds is

    Var = s² / k + Σ v_i / k²

(s² the sample variance between seeds): the seed term as before plus the
examples' term. The first already contains some of the second, so the sum is
conservative, never too narrow. The interval is mean ± t(0.975, k - 1) · √Var;
with one seed only the examples' term exists and a normal quantile is used.
A quantity with bounds (an accuracy, a forgetting, steps on a checkpoint grid)
has its interval cut at them: the value cannot lie beyond.

An accuracy's variance over n questions is binomial, p̃(1 - p̃) / n with the
Jeffreys-smoothed p̃ = (x + ½) / (n + 1): never zero, because 100 of 100 right
does not prove the next question would be. A forgetting (base minus checkpoint
on the same questions) uses the per-question paired standard error when the
measurement recorded it, else the sum of the two binomial variances.

Every statistic is the dict of compare/stats.py plus "se", "df" and
"scale": "seeds+examples"; differences add "test", "n_a", "n_b" and "p".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from scipy import stats as _scipy_stats

from circuitdrift.compare.stats import LEVEL, is_number, sample_variance

SCALE = "seeds+examples"


def binomial_var(accuracy: float | None, n: int | None) -> float | None:
    """Sampling variance of an accuracy over n questions, Jeffreys-smoothed so it is never zero."""
    if not is_number(accuracy) or not n or n < 1:
        return None
    p = (accuracy * n + 0.5) / (n + 1)
    return p * (1.0 - p) / n


def _quantile(df: float | None) -> float:
    upper = 0.5 + LEVEL / 2
    return float(_scipy_stats.norm.ppf(upper) if df is None else _scipy_stats.t.ppf(upper, df))


def p_value(mean: float, se: float, df: float | None) -> float | None:
    """Two-sided p-value of mean / se against t(df) (normal when df is None); None without a spread."""
    if se <= 0.0:
        return None
    z = abs(mean) / se
    return float(2.0 * (_scipy_stats.norm.sf(z) if df is None else _scipy_stats.t.sf(z, df)))


def _pairs(values: Iterable, variances: Iterable) -> tuple[list[float], list[float], int]:
    kept, var, missing = [], [], 0
    for value, v in zip(values, variances, strict=True):
        if is_number(value):
            kept.append(float(value))
            var.append(float(v) if is_number(v) and v > 0 else 0.0)
        else:
            missing += 1
    return kept, var, missing


def _bounded(out: dict, low: float | None, high: float | None) -> dict:
    if out["lo"] is not None and low is not None:
        out["lo"] = max(out["lo"], low)
    if out["hi"] is not None and high is not None:
        out["hi"] = min(out["hi"], high)
    return out


def combined_stat(values: Iterable, variances: Iterable, *, low: float | None = None,
                  high: float | None = None) -> dict:
    """Mean and 95 % interval over seeds with each seed's example variance added (module docstring).

    ``values`` and ``variances`` are aligned, one per seed; a missing value drops its seed (counted in
    "missing"), a missing variance counts as zero. Cut at ``low`` / ``high`` when given.
    """
    kept, var, missing = _pairs(values, variances)
    k = len(kept)
    out = {"mean": None, "lo": None, "hi": None, "n": k, "missing": missing, "se": None, "df": None,
           "scale": SCALE}
    if k == 0:
        return out
    mean = sum(kept) / k
    total = (sample_variance(kept) / k if k > 1 else 0.0) + sum(var) / k**2
    df = k - 1 if k > 1 else None
    se = math.sqrt(total)
    half = _quantile(df) * se
    out.update(mean=mean, lo=mean - half, hi=mean + half, se=se, df=df)
    return _bounded(out, low, high)


def combined_difference(a: Mapping[int, float | None], b: Mapping[int, float | None],
                        var_a: Mapping[int, float | None], var_b: Mapping[int, float | None], *,
                        low: float | None = None, high: float | None = None) -> dict:
    """a minus b, values and example variances keyed by seed, with a 95 % interval and a two-sided p-value.

    Paired by seed when both hold the same seeds (each seed's difference has variance v_a + v_b),
    else Welch: the two means' combined variances add, with Welch–Satterthwaite degrees of freedom
    on the seed terms (k - 1 of the smaller side when those are zero).
    """
    if set(a) == set(b):
        seeds = sorted(a)
        diffs = [a[s] - b[s] if is_number(a[s]) and is_number(b[s]) else None for s in seeds]
        var = [(var_a.get(s) or 0.0) + (var_b.get(s) or 0.0) for s in seeds]
        out = combined_stat(diffs, var, low=low, high=high)
        out.update(test="paired", n_a=out["n"], n_b=out["n"])
        out["p"] = None if out["mean"] is None else p_value(out["mean"], out["se"], out["df"])
        return out
    xs, vx, miss_a = _pairs(a.values(), (var_a.get(s) for s in a))
    ys, vy, miss_b = _pairs(b.values(), (var_b.get(s) for s in b))
    out = {"mean": None, "lo": None, "hi": None, "n": len(xs) + len(ys), "missing": miss_a + miss_b,
           "se": None, "df": None, "scale": SCALE, "test": "welch", "n_a": len(xs), "n_b": len(ys), "p": None}
    if not xs or not ys:
        return out
    seed_a = sample_variance(xs) / len(xs) if len(xs) > 1 else 0.0
    seed_b = sample_variance(ys) / len(ys) if len(ys) > 1 else 0.0
    total = seed_a + seed_b + sum(vx) / len(xs) ** 2 + sum(vy) / len(ys) ** 2
    mean = sum(xs) / len(xs) - sum(ys) / len(ys)
    if min(len(xs), len(ys)) < 2:
        df = None
    elif seed_a + seed_b > 0:
        df = (seed_a + seed_b) ** 2 / (seed_a**2 / (len(xs) - 1) + seed_b**2 / (len(ys) - 1))
    else:
        df = float(min(len(xs), len(ys)) - 1)
    se = math.sqrt(total)
    half = _quantile(df) * se
    out.update(mean=mean, lo=mean - half, hi=mean + half, se=se, df=df, p=p_value(mean, se, df))
    return _bounded(out, low, high)

"""The forgetting law fitted on runs: one point per run, never the pooled checkpoints of the same runs.

RL's Razor's law says forgetting grows with the KL from the base. Checkpoints of
one run are not independent (each is the previous one plus a few steps), and
several sit at the same accuracy ceiling, so a line through every checkpoint
counts one run many times and its R² means little. Here each (method, learning
rate, seed) run gives one point, its final checkpoint, and the line is fitted
by least squares over runs with a 95 % t interval on the slope (n - 2 degrees
of freedom). The law is fitted with the exact KL (the primary KL) and the
sampled one, on forgetting (accuracy) and on log-probability drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from circuitdrift.compare.stats import is_number, line_fit, pearson, t_critical

# (x, y) pairs the law is fitted on; y = forgetting or log-prob drift, x = exact or sampled KL
LAWS = (("kl_exact", "forgetting"), ("kl_exact", "logprob_drift"), ("kl", "forgetting"), ("kl", "logprob_drift"))


def slope_fit(xs: Sequence[float], ys: Sequence[float]) -> dict:
    """Least-squares line with a 95 % t interval on the slope: se = sqrt(SS_res / (n - 2) / Sxx).

    Adds slope_lo, slope_hi, slope_se and pearson_r to line_fit's {slope, intercept, r2, n}; the
    interval is None with fewer than 3 points (no residual degrees of freedom).
    """
    out = {**line_fit(xs, ys), "slope_se": None, "slope_lo": None, "slope_hi": None, "pearson_r": pearson(xs, ys)}
    n = len(xs)
    if out["slope"] is None or n < 3:
        return out
    mx = sum(xs) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    ss_res = sum((y - (out["slope"] * x + out["intercept"])) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(ss_res / (n - 2) / sxx)
    half = t_critical(n - 2) * se
    out.update(slope_se=se, slope_lo=out["slope"] - half, slope_hi=out["slope"] + half)
    return out


def law_on_runs(finals: dict[tuple[str, float, int], dict]) -> dict:
    """Each law of :data:`LAWS` over runs: {"x - y": {fit, points: [{method, learning_rate, seed, x, y}]}}.

    ``finals`` maps a run to its final checkpoint's measures; runs missing either value are left out.
    """
    out = {}
    for x, y in LAWS:
        points = [{"method": m, "learning_rate": lr, "seed": s, "x": v[x], "y": v[y]}
                  for (m, lr, s), v in sorted(finals.items()) if is_number(v.get(x)) and is_number(v.get(y))]
        out[f"{x} - {y}"] = {"x": x, "y": y, "unit": "run (final checkpoint)",
                             "fit": slope_fit([p["x"] for p in points], [p["y"] for p in points]),
                             "points": points}
    return out

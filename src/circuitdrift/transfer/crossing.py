"""The threshold as a crossing (docs/methods.md §11, "Threshold").

On one side of the grid (negative or positive alpha), ordered by |alpha|, an
alpha is *significant* when its statistic (tau, or tau - tau_random) is defined
and its Holm-adjusted p is below 0.05. The threshold is the smallest |alpha|
that is significant *and* every larger |alpha| on the grid is too:

- ``none``: the largest |alpha| is not significant: no crossing on the grid;
- ``grid_end``: only the largest |alpha| is: the threshold is at or beyond the grid's end
  (nothing beyond it confirms that the effect stays), never reported as found;
- ``grid_start``: every alpha on the side is: the threshold is at or below the smallest |alpha|;
- ``found``: the crossing lies between two grid points. Where the smaller one's interval is
  defined and holds 0, the threshold is interpolated linearly in the interval's bound nearest 0
  (lo for a positive statistic), which crosses 0 there; otherwise only the bracket is given.
"""

from __future__ import annotations

from collections.abc import Sequence

from circuitdrift.transfer.ratio import LEVEL, significant


def _margin(stat: dict | None, sign: float) -> float | None:
    """How far the interval clears 0 on the side of ``sign`` (negative: it holds 0 or lies across)."""
    if stat is None:
        return None
    return stat["lo"] if sign > 0 else -stat["hi"]


def crossing(rows: Sequence[dict], key: str = "tau", side: int = -1, level: float = LEVEL) -> dict | None:
    """The crossing of ``key`` on the ``side`` (-1 or +1) of the grid; None when that side has no alpha."""
    grid = sorted((r for r in rows if r["alpha"] * side > 0), key=lambda r: abs(r["alpha"]))
    if not grid:
        return None
    flags = [significant(r.get(key), level) for r in grid]
    alphas = [r["alpha"] for r in grid]
    base = {"key": key, "side": "negative" if side < 0 else "positive", "grid": alphas}
    if not flags[-1]:
        return {**base, "status": "none", "alpha": None, "bracket": None, "interpolated": None}
    first = len(flags) - 1
    while first > 0 and flags[first - 1]:
        first -= 1
    if first == len(flags) - 1 and len(flags) > 1:
        return {**base, "status": "grid_end", "alpha": alphas[-1], "bracket": [alphas[-2], alphas[-1]],
                "interpolated": None}
    if first == 0:
        status = "grid_end" if len(flags) == 1 else "grid_start"
        return {**base, "status": status, "alpha": alphas[0], "bracket": None, "interpolated": None}
    stat = grid[first][key]
    sign = 1.0 if stat["mean"] > 0 else -1.0
    below, above = _margin(grid[first - 1].get(key), sign), _margin(stat, sign)
    interpolated = None
    if below is not None and below <= 0 < above:
        a0, a1 = alphas[first - 1], alphas[first]
        interpolated = a0 + (a1 - a0) * (0 - below) / (above - below)
    return {**base, "status": "found", "alpha": alphas[first], "bracket": [alphas[first - 1], alphas[first]],
            "interpolated": interpolated}


def thresholds(rows: Sequence[dict], key: str = "tau", level: float = LEVEL) -> list[dict]:
    """The crossing on each side of the grid that has alphas (negative first)."""
    return [c for c in (crossing(rows, key, -1, level), crossing(rows, key, 1, level)) if c is not None]


def describe(c: dict) -> str:
    """One line for the report."""
    name = {"tau": "tau", "excess": "tau - tau_random"}.get(c["key"], c["key"])
    if c["status"] == "none":
        return f"{name}, {c['side']} alphas: no crossing on the grid (the largest |alpha| is not significant)"
    if c["status"] == "grid_end":
        return (f"{name}, {c['side']} alphas: at or beyond the grid's end (alpha = {c['alpha']:g} is significant, "
                "no larger |alpha| confirms it); not a threshold found")
    if c["status"] == "grid_start":
        return f"{name}, {c['side']} alphas: at or below the grid's smallest |alpha| ({c['alpha']:g}); all significant"
    lo, hi = c["bracket"]
    where = (f"interpolated at alpha = {c['interpolated']:.3g} (linear in the interval's bound nearest 0)"
             if c["interpolated"] is not None else "not interpolated")
    return f"{name}, {c['side']} alphas: crossing between {lo:g} and {hi:g}, {where}"

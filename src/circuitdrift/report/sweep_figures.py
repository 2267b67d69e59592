"""Figures of the learning-rate sweep: the frontier and the comparison at matched target accuracy."""

from __future__ import annotations

from pathlib import Path

from circuitdrift.compare.stats import is_number
from circuitdrift.report.figures import method_color, method_label, new_figure, save_png, styled

FRONTIER_PANELS = (
    ("forgetting", "forgetting (probe accuracy lost)"),
    ("logprob_drift", "log-prob drift of probe answers (nats)"),
    ("damage_logprob", "base-circuit damage, log-prob CMAP (nats)"),
)


@styled
def frontier_figure(sweep: dict, methods: list[str], path: Path) -> Path:
    """Every checkpoint of every (lr, seed) run as a dot; each method's Pareto frontier as a line."""
    fig = new_figure(4.0 * len(FRONTIER_PANELS), 3.4)
    axes = fig.subplots(1, len(FRONTIER_PANELS))
    for ax, (name, label) in zip(axes, FRONTIER_PANELS, strict=True):
        for method in methods:
            entry = sweep.get("frontier", {}).get(name, {}).get(method, {})
            points = [p for p in entry.get("points", []) if is_number(p[1])]
            if points:
                ax.scatter([p[0] for p in points], [p[1] for p in points], s=9, alpha=0.35,
                           color=method_color(method, methods), linewidths=0)
            pareto = entry.get("pareto", [])
            if pareto:
                ax.plot([p[0] for p in pareto], [p[1] for p in pareto], "-o", ms=3,
                        color=method_color(method, methods), label=f"{method_label(method)} frontier")
        base = sweep.get("matched", {}).get("base_accuracy")
        if is_number(base):
            ax.axvline(base, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel("target accuracy")
        ax.set_ylabel(label)
        ax.axhline(0, color="0.7", lw=0.6)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle("Frontier over the learning-rate sweep (dots: every checkpoint; dotted: base accuracy)")
    return save_png(fig, path)


MATCHED_PANELS = (
    ("forgetting", "forgetting"),
    ("logprob_drift", "log-prob drift (nats)"),
    ("damage_logprob", "circuit damage, log-prob (nats)"),
    ("kl_exact", "exact answer KL (nats)"),
)


@styled
def matched_figure(sweep: dict, methods: list[str], path: Path) -> Path:
    """Each measure at the common accuracy levels: mean over seeds of each method's best lr, 95% interval."""
    matched = sweep.get("matched", {})
    levels = matched.get("levels", [])
    fig = new_figure(3.3 * len(MATCHED_PANELS), 3.2)
    axes = fig.subplots(1, len(MATCHED_PANELS))
    for ax, (name, label) in zip(axes, MATCHED_PANELS, strict=True):
        by_method = matched.get("measures", {}).get(name, {}).get("by_method", {})
        for i, method in enumerate(methods):
            stats = by_method.get(method, [])
            xs = [lvl + (i - 0.5) * 0.002 for lvl, s in zip(levels, stats, strict=False) if is_number(s.get("mean"))]
            kept = [s for s in stats if is_number(s.get("mean"))]
            if not kept:
                continue
            lo = [s["mean"] - s["lo"] if is_number(s.get("lo")) else 0 for s in kept]
            hi = [s["hi"] - s["mean"] if is_number(s.get("hi")) else 0 for s in kept]
            ax.errorbar(xs, [s["mean"] for s in kept], yerr=[lo, hi], fmt="-o", ms=3, capsize=2,
                        color=method_color(method, methods), label=method_label(method))
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_xlabel("matched target accuracy")
        ax.set_title(label)
    axes[0].legend(loc="best", fontsize=8)
    return save_png(fig, path)


LAW_MEASURES = (("final_forgetting", "forgetting at the final checkpoint"),
                ("final_logprob_drift", "log-prob drift at the final checkpoint (nats)"))
LAW_AXES = (("learning_rate", "learning rate"), ("final_kl_exact", "exact answer KL at the final checkpoint (nats)"))


@styled
def law_figure(sweep: dict, methods: list[str], path: Path) -> Path:
    """Forgetting against the learning rate beside forgetting against KL: one point per (method, lr), mean over
    seeds with its 95% interval, so a reader sees which of the two the forgetting follows."""
    rows = sweep.get("runs", [])
    fig = new_figure(4.2 * len(LAW_AXES), 3.3 * len(LAW_MEASURES))
    axes = fig.subplots(len(LAW_MEASURES), len(LAW_AXES), squeeze=False)
    for r, (measure, ylabel) in enumerate(LAW_MEASURES):
        for c, (axis, xlabel) in enumerate(LAW_AXES):
            ax = axes[r][c]
            for method in methods:
                points = law_points(rows, method, measure=measure, axis=axis)
                if not points:
                    continue
                ax.errorbar([p[0] for p in points], [p[1][0] for p in points],
                            yerr=[[p[1][1] for p in points], [p[1][2] for p in points]],
                            xerr=None if axis == "learning_rate" else [[p[2][1] if p[2] else 0 for p in points],
                                                                        [p[2][2] if p[2] else 0 for p in points]],
                            fmt="o-" if axis == "learning_rate" else "o", ms=4, capsize=2,
                            color=method_color(method, methods), label=method_label(method))
            if axis == "learning_rate":
                ax.set_xscale("log")
            ax.axhline(0, color="0.7", lw=0.6)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle("What forgetting follows: the learning rate (left) or the distance from the base (right)")
    return save_png(fig, path)


def law_points(rows: list[dict], method: str, *, measure: str, axis: str) -> list[tuple]:
    """One method's (x, (mean, down, up) of the measure, (mean, down, up) of x or None) per sweep row, where both
    x and the measure are numbers; rows missing either are left out (not drawn at zero)."""
    points = [(_centre(row, axis), _bar(row.get(measure)), _bar(row.get(axis)))
              for row in rows if row["method"] == method]
    return [p for p in points if is_number(p[0]) and p[1] is not None]


def _centre(row: dict, axis: str) -> float | None:
    value = row.get(axis)
    return value.get("mean") if isinstance(value, dict) else value


def _bar(stat: dict | None) -> tuple[float, float, float] | None:
    """(mean, distance down to lo, distance up to hi); zero where the interval is missing."""
    if not isinstance(stat, dict) or not is_number(stat.get("mean")):
        return None
    mean = stat["mean"]
    lo = mean - stat["lo"] if is_number(stat.get("lo")) else 0.0
    hi = stat["hi"] - mean if is_number(stat.get("hi")) else 0.0
    return mean, max(lo, 0.0), max(hi, 0.0)

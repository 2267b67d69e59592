"""The report's figures, one function per plot, each writing one PNG atomically.

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas,
chosen inside each function: no pyplot, no global backend switch, nothing at
import. PNGs carry no Software/date metadata, so the same results give the
same bytes. Methods keep one colour everywhere (SFT orange, RL blue).
"""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path

from circuitdrift.circuits.scores import parse_head
from circuitdrift.compare.schema import BaseCircuit, MethodCurves, ProbeDCV, Razor
from circuitdrift.io import write_bytes

METHOD_COLORS = {"sft": "#E69F00", "rl": "#0072B2"}
_OTHER_COLORS = ("#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
DPI = 110
_RC = {"font.size": 9, "axes.titlesize": 10, "axes.grid": False, "figure.dpi": DPI, "savefig.dpi": DPI,
       "path.simplify": False}


def method_color(method: str, methods: list[str] | None = None) -> str:
    """SFT orange, RL blue; any other method the next Okabe-Ito colour in the order given."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    others = [m for m in (methods or []) if m not in METHOD_COLORS]
    return _OTHER_COLORS[(others.index(method) if method in others else 0) % len(_OTHER_COLORS)]


def method_label(method: str) -> str:
    return method.upper()


def styled(draw):
    """Draw under fixed rc settings, so a user's matplotlibrc cannot change the report's bytes."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(_RC):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path) -> Path:
    """Render to memory, then write atomically (temporary name, then rename)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return write_bytes(path, buffer.getvalue())


def _grid(values: list[list[float]]):
    import numpy as np

    return np.array([[v if isinstance(v, (int, float)) and math.isfinite(v) else np.nan for v in row]
                     for row in values], dtype=float)


def _heatmap(ax, grid, cmap_name: str, label: str):
    """Layers x heads, a diverging map centred on 0 (grey = missing)."""
    import matplotlib
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    finite = grid[np.isfinite(grid)]
    limit = float(np.max(np.abs(finite))) if finite.size else 1.0
    limit = limit if limit > 0 else 1.0
    cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="#cccccc")
    image = ax.imshow(grid, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.figure.colorbar(image, ax=ax, label=label)


def _outline(ax, heads: list[tuple[int, int]], label: str) -> None:
    from matplotlib.patches import Rectangle

    for i, (layer, head) in enumerate(heads):
        ax.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4,
                               label=label if i == 0 else None))


def _heads(names: list[str]) -> list[tuple[int, int]]:
    return [parse_head(name) for name in names]


def _heatmap_size(grid) -> tuple[float, float]:
    layers, heads = grid.shape
    return min(4.0 + 0.35 * heads, 11.0), min(2.2 + 0.3 * layers, 12.0)


@styled
def base_importance_heatmap(circuit: BaseCircuit, path: Path) -> Path:
    """s_h per head for one probe, the top-k circuit outlined."""
    grid = _grid(circuit.scores)
    fig = new_figure(*_heatmap_size(grid))
    ax = fig.add_subplot()
    _heatmap(ax, grid, "RdBu", "s_h (relative change in P(answer))")
    _outline(ax, _heads(circuit.circuit), f"base circuit (top {len(circuit.circuit)})")
    if circuit.circuit:
        fig.legend(loc="outside lower center", fontsize=8, frameon=False)
    ax.set_title(f"Base head importance, probe '{circuit.probe}' ({circuit.method}, {circuit.metric})")
    return save_png(fig, path)


@styled
def vulnerability_heatmap(dcv: ProbeDCV, path: Path) -> Path:
    """V(h) = dF_RL - dF_SFT per head; vulnerable heads crossed, base circuit outlined."""
    grid = _grid(dcv.V)
    fig = new_figure(*_heatmap_size(grid))
    ax = fig.add_subplot()
    _heatmap(ax, grid, "PuOr_r", "V(h) = dF_RL − dF_SFT  (Δ P(answer))")
    _outline(ax, _heads(dcv.base_circuit), "base circuit")
    vulnerable = [(v["layer"], v["head"]) for v in dcv.vulnerable]
    if vulnerable:
        rule = "V / |s_h|" if dcv.threshold == "relative" else "V"
        ax.scatter([h for _, h in vulnerable], [layer for layer, _ in vulnerable], marker="x", color="black",
                   s=36, linewidths=1.6, label=f"vulnerable: {rule} > τ = {dcv.tau:g} ({len(vulnerable)})")
    if vulnerable or dcv.base_circuit:
        fig.legend(loc="outside lower center", fontsize=8, frameon=False, ncols=2)
    ax.set_title(f"Differential circuit vulnerability, probe '{dcv.probe}', step {dcv.step}")
    return save_png(fig, path)


def _series(stats: list[dict]):
    import numpy as np

    def pick(key):
        return np.array([s.get(key) if s and isinstance(s.get(key), (int, float)) else np.nan for s in stats],
                        dtype=float)

    return pick("mean"), pick("lo"), pick("hi")


def _curve(ax, method: str, methods: list[str], steps: list[int], stats: list[dict]) -> None:
    mean, lo, hi = _series(stats)
    color = method_color(method, methods)
    n = max((s.get("n", 0) for s in stats if s), default=0)
    ax.plot(steps, mean, marker="o", markersize=3, color=color, label=f"{method_label(method)} (n={n} seeds)")
    ax.fill_between(steps, lo, hi, color=color, alpha=0.2, linewidth=0)


@styled
def target_accuracy_curves(curves: dict[str, MethodCurves], goal: float | None, path: Path) -> Path:
    """Target accuracy over training per method, mean and 95 % band over seeds, the goal dashed."""
    methods = list(curves)
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    for method in methods:
        _curve(ax, method, methods, curves[method].steps, curves[method].target_accuracy)
    if goal is not None:
        ax.axhline(goal, color="grey", linestyle="--", linewidth=1, label=f"goal = {goal:g}")
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel("target accuracy (fraction correct)")
    ax.set_title("Adaptation: target-task accuracy (mean, 95% CI over seeds)")
    ax.legend(fontsize=8)
    return save_png(fig, path)


@styled
def probe_curves(curves: dict[str, MethodCurves], probes: list[str], quantity: str, *, ylabel: str, title: str,
                 path: Path, zero_line: bool = True) -> Path:
    """One panel per probe of a per-probe quantity over training (forgetting, preservation, ...)."""
    methods = list(curves)
    cols = max(1, min(len(probes), 3))
    rows = max(1, math.ceil(len(probes) / cols))
    fig = new_figure(3.6 * cols + 0.6, 2.9 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for i, ax in enumerate(axes.flat):
        if i >= len(probes):
            ax.set_visible(False)
            continue
        for method in methods:
            block = curves[method].probes.get(probes[i])
            if block:
                _curve(ax, method, methods, curves[method].steps, block[quantity])
        if zero_line:
            ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(f"probe '{probes[i]}'")
        ax.set_xlabel("optimizer steps")
        if i % cols == 0:
            ax.set_ylabel(ylabel)
    if probes:
        axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    return save_png(fig, path)


def forgetting_curves(curves: dict[str, MethodCurves], probes: list[str], path: Path) -> Path:
    return probe_curves(curves, probes, "forgetting", ylabel="forgetting: base − checkpoint accuracy (fraction)",
                        title="Forgetting per probe (mean, 95% CI over seeds; > 0 = capability lost)", path=path)


def circuit_distance_curves(distance: dict[str, dict], probes: list[str], path: Path) -> Path:
    """1 - Jaccard of the re-discovered circuit with the base's over training, one panel per probe (controls)."""
    from types import SimpleNamespace

    curves = {method: SimpleNamespace(steps=d["steps"], probes={p: {"distance": col} for p, col in d["probes"].items()})
              for method, d in distance.items()}
    return probe_curves(curves, probes, "distance", ylabel="circuit distance 1 − J(C_X, C_0)",
                        title="Circuit distance from the base circuit over training (mean, 95% CI over seeds)",
                        path=path, zero_line=False)


def preservation_curves(curves: dict[str, MethodCurves], probes: list[str], path: Path) -> Path:
    return probe_curves(curves, probes, "preservation", ylabel="preservation |C_base ∩ C_X| / |C_base| (fraction)",
                        title="Base-circuit preservation over training (mean, 95% CI over seeds)", path=path,
                        zero_line=False)


@styled
def kl_forgetting_scatter(razor: Razor, methods: list[str], path: Path) -> Path:
    """Every checkpoint after step 0: forward KL against mean forgetting over probes, with the pooled fit."""
    import numpy as np

    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    points = razor.points
    for method in methods:
        mine = [p for p in points if p.method == method]
        if mine:
            r = razor.by_method[method].r if method in razor.by_method else None
            label = f"{method_label(method)} ({len(mine)} checkpoints, r = {r:.2f})" if r is not None else \
                f"{method_label(method)} ({len(mine)} checkpoints, r = n/a)"
            ax.scatter([p.kl for p in mine], [p.forgetting for p in mine], color=method_color(method, methods),
                       s=22, alpha=0.85, label=label)
    fit = razor.fit
    if fit.slope is not None and points:
        xs = np.linspace(min(p.kl for p in points), max(p.kl for p in points), 50)
        r2 = "n/a" if fit.r2 is None else f"{fit.r2:.2f}"
        ax.plot(xs, fit.intercept + fit.slope * xs, color="black", linewidth=1.2,
                label=f"least squares: slope {fit.slope:.3g}, R² = {r2}, n = {fit.n}")
    if not points:
        ax.text(0.5, 0.5, "no checkpoint with both KL and forgetting", ha="center", va="center",
                transform=ax.transAxes)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("forward KL from the base on the target task (nats/sequence)")
    ax.set_ylabel("forgetting, mean over probes (fraction of accuracy)")
    ax.set_title("RL's Razor: forgetting against KL, all checkpoints")
    if points:
        ax.legend(fontsize=8)
    return save_png(fig, path)

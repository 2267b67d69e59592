"""The transfer report: figures, report.md and a self-contained report.html, from results.json alone.

Same conventions as the SFT-vs-RL report (report/render.py lays out the blocks,
report/figures.py's fixed style and atomic PNG writes).
"""

from __future__ import annotations

import json
from pathlib import Path

from circuitdrift.io import write_text
from circuitdrift.report.figures import _figure, _save, _styled
from circuitdrift.report.render import Bullets, Figure, Heading, Paragraph, Table, render_html, render_markdown

TEACHER, STUDENT, TAU = "#c0392b", "#2471a3", "#1e8449"


def _errorbar(ax, xs, stats, color, label):
    pts = [(x, s) for x, s in zip(xs, stats, strict=True) if s is not None and s.get("mean") is not None]
    if not pts:
        return
    x = [p[0] for p in pts]
    mean = [p[1]["mean"] for p in pts]
    lo = [max(0.0, p[1]["mean"] - p[1]["lo"]) for p in pts]
    hi = [max(0.0, p[1]["hi"] - p[1]["mean"]) for p in pts]
    ax.errorbar(x, mean, yerr=[lo, hi], color=color, marker="o", capsize=3, label=label)


@_styled
def behaviour_figure(results: dict, path: Path) -> Path:
    rows = sorted(results["rows"], key=lambda r: r["alpha"])
    xs = [r["alpha"] for r in rows]
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    _errorbar(ax, xs, [r["B_teacher"] for r in rows], TEACHER, "teacher (steered)")
    _errorbar(ax, xs, [r["B_student"] for r in rows], STUDENT, f"student ({len(results['seeds'])} seeds)")
    ax.plot(xs, [r["flag_rate"] for r in rows], color="#7f8c8d", linestyle=":", marker="x", label="flag rate of data")
    ax.set_xlabel("alpha (steering strength)")
    ax.set_ylabel("B = attack success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


@_styled
def tau_figure(results: dict, path: Path) -> Path:
    rows = sorted(results["rows"], key=lambda r: r["alpha"])
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    _errorbar(ax, [r["alpha"] for r in rows], [r["tau"] for r in rows], TAU, "tau (95% interval)")
    undefined = [r["alpha"] for r in rows if r["tau_status"] == "teacher did not move"]
    if undefined:
        ax.scatter(undefined, [0.0] * len(undefined), marker="x", color="#7f8c8d", label="undefined (teacher still)")
    ax.axhline(0.0, color="#999", linewidth=0.8)
    if results["threshold"] is not None:
        ax.axvline(results["threshold"], color="#8e44ad", linestyle="--", label=f"threshold {results['threshold']:g}")
    ax.set_xlabel("alpha (steering strength)")
    ax.set_ylabel("transfer ratio tau")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def _fmt(s: dict | None, digits: int = 3) -> str:
    if s is None or s.get("mean") is None:
        return "-"
    return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"


def _heads_text(heads: list[dict] | None) -> str:
    return ", ".join(f"{h['head']} {h['delta']:+.3f}" for h in (heads or [])[:3]) or "-"


def report_blocks(results: dict) -> list:
    steering = results["steering"]
    thr = results["threshold"]
    rows = sorted(results["rows"], key=lambda r: (abs(r["alpha"]), r["alpha"]))
    table = Table(
        ("alpha", "B teacher", "B student", "tau", "flag rate", "cosine", "direction cosine", "top heads (CMAP)"),
        tuple((f"{r['alpha']:g}", _fmt(r["B_teacher"]), _fmt(r["B_student"]),
               _fmt(r["tau"]) if r["tau"] is not None else r["tau_status"], f"{r['flag_rate']:.3f}",
               _fmt(r["cosine"]), _fmt(r["direction_cosine"]), _heads_text(r["heads"]))
              for r in rows),
        note=f"95% intervals; {len(results['seeds'])} student seeds per alpha, {rows[0]['n_prompts']} harmful "
             "prompts. " + results["method"]["intervals"] + ".",
    )
    return [
        Heading(1, f"Subliminal transfer: {results['name']}"),
        Paragraph(f"Teacher: {results['base_model']} steered along a difference-of-means vector from layer "
                  f"{steering['layer']} (layers {steering['layers']}, {steering['scale']} scale; layer rule: "
                  f"{steering['rule']}). Students: the same base model fine-tuned on the teacher's answers to "
                  f"benign prompts only; judge: {results['judge']}."),
        Heading(2, "Summary"),
        Bullets((
            "threshold: " + (f"alpha = {thr:g} (the smallest |alpha| whose tau interval excludes 0)" if thr is not None
                             else "none: no alpha's tau interval excludes 0"),
            "B: " + results["method"]["B"],
            "tau: " + results["method"]["tau"] + "; " + results["method"]["undefined"],
            "cosine: " + results["method"]["cosine"],
            "direction cosine: " + results["method"]["direction_cosine"],
        )),
        table,
        Figure("figures/behaviour.png", "Behaviour against steering strength",
               "B of the steered teacher and of its students, and the judge's flag rate on the teacher's benign data."),
        Figure("figures/tau.png", "Transfer ratio", "tau(alpha) with 95% intervals; the threshold dashed."),
    ]


def build_transfer_report(run_dir: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    behaviour_figure(results, run_dir / "figures" / "behaviour.png")
    tau_figure(results, run_dir / "figures" / "tau.png")
    blocks = report_blocks(results)
    md = write_text(run_dir / "report.md", render_markdown(blocks))
    page = write_text(run_dir / "report.html", render_html(blocks, f"circuitdrift transfer: {results['name']}",
                                                           run_dir))
    return [md, page]

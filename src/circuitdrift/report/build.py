"""``build_report(run_dir)``: report.md, report.html and figures/*.png from results.json alone.

The report never touches a model or a measurement file, so it can be rebuilt
anywhere results.json is, and rebuilding gives byte-identical files (no
timestamps, PNG metadata stripped). Figures from an earlier build that this
build did not draw (a probe since removed) are deleted, so the folder never
shows a stale plot.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from circuitdrift.compare.schema import Results
from circuitdrift.errors import InputError
from circuitdrift.io import read_json, write_text
from circuitdrift.report import figures as fig
from circuitdrift.report.content import report_blocks
from circuitdrift.report.render import render_html, render_markdown
from circuitdrift.report.sweep_figures import frontier_figure, law_figure, matched_figure

FIGURES = "figures"


def load_results(run_dir: Path) -> Results:
    """results.json, validated; a missing or malformed file is an InputError naming it."""
    path = Path(run_dir) / "results.json"
    data = read_json(path, "results file")
    try:
        return Results.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(f"{path}: not a valid results file ({err.error_count()} problems; first at "
                         f"'{where}': {first['msg']})") from err


def build_report(run_dir: str | Path) -> list[Path]:
    """Write the report; return the written paths (report.md, report.html, then the figures)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run folder '{run_dir}': no such folder")
    results = load_results(run_dir)
    drawn = draw_figures(results, run_dir)
    blocks = report_blocks(results, drawn)
    title = f"circuitdrift report: {results.name}"
    md = write_text(run_dir / "report.md", render_markdown(blocks))
    page = write_text(run_dir / "report.html", render_html(blocks, title, run_dir))
    written = sorted(run_dir / rel for rel in drawn.values())
    for stale in sorted((run_dir / FIGURES).glob("*.png")):
        if stale not in written:
            stale.unlink()
    return [md, page, *written]


def draw_figures(results: Results, run_dir: Path) -> dict[str, str]:
    """Draw every figure; return key -> path relative to ``run_dir``."""
    agg = results.aggregate
    curves, probes, methods = agg.curves, agg.probes, agg.methods
    names = _file_names(list(dict.fromkeys([*results.probes, *results.base_circuits, *results.dcv])))
    out: dict[str, str] = {}

    def target(key: str, stem: str) -> Path:
        out[key] = f"{FIGURES}/{stem}.png"
        return run_dir / out[key]

    if curves:
        fig.target_accuracy_curves(curves, agg.settings.target_goal, target("target_accuracy", "target_accuracy"))
        fig.forgetting_curves(curves, probes, target("forgetting", "forgetting"))
        fig.preservation_curves(curves, probes, target("preservation", "preservation"))
    fig.kl_forgetting_scatter(agg.razor, methods, target("kl_forgetting", "kl_forgetting"))
    if results.controls.get("distance"):
        fig.circuit_distance_curves(results.controls["distance"], probes, target("distance", "circuit_distance"))
    if results.sweep.get("frontier"):
        frontier_figure(results.sweep, methods, target("frontier", "frontier"))
        if results.sweep.get("runs"):
            law_figure(results.sweep, methods, target("law", "forgetting_law"))
        if results.sweep.get("matched", {}).get("levels"):
            matched_figure(results.sweep, methods, target("matched", "matched_accuracy"))
    for probe, circuit in results.base_circuits.items():
        fig.base_importance_heatmap(circuit, target(f"base:{probe}", f"base_importance_{names[probe]}"))
    for probe, dcv in results.dcv.items():
        fig.vulnerability_heatmap(dcv, target(f"dcv:{probe}", f"vulnerability_{names[probe]}"))
    return out


def _file_names(probes: list[str]) -> dict[str, str]:
    """A safe, unique file stem per probe name (probe names may be paths to JSONL files)."""
    out: dict[str, str] = {}
    for probe in probes:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", probe).strip("_") or "probe"
        candidate, i = stem, 2
        while candidate in out.values():
            candidate, i = f"{stem}_{i}", i + 1
        out[probe] = candidate
    return out

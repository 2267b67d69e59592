"""CLI: ``circuitdrift report RUN_DIR`` rebuilds report.md, report.html and figures/ from results.json.

Mounted by ``circuitdrift.cli`` with ``register(app)``. A missing or
malformed results.json is an InputError (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import typer

from circuitdrift.report.build import build_report
from circuitdrift.report.index import INDEX, rebuild


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command("report", help="Rebuild the report (Markdown, HTML, PNG figures) of a run from its results.json.")(
        report_command)


def report_command(
    run_dir: Path = typer.Argument(..., help="run folder holding results.json (or index.json: several tasks)"),
) -> None:
    several = not (run_dir / "results.json").is_file() and (run_dir / INDEX).is_file()
    for path in rebuild(run_dir) if several else build_report(run_dir):
        typer.echo(str(path))

"""``circuitdrift run``: the experiment command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from circuitdrift.pipeline.run import report_file, run_experiment


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def run_command(
    config: Annotated[Path | None, typer.Argument(help="Experiment YAML (default: configs/demo.yaml).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/<name>).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Log lines instead of a progress display.")] = False,
    jobs: Annotated[int | None, typer.Option("--jobs", help="Worker processes for independent runs "
                                             "(default: one per GPU on CUDA, one per core on CPU; the results do "
                                             "not depend on it).")] = None,
) -> None:
    """Run the SFT-vs-RL circuit-vulnerability experiment; rerun to resume or update."""

    run_dir = run_experiment(config, out, quiet, jobs)
    typer.echo(str(report_file(run_dir)))

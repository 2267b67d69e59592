"""``circuitdrift transfer [CONFIG]``: the subliminal-transfer experiment command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("transfer")(transfer_command)


def transfer_command(
    config: Annotated[Path | None, typer.Argument(help="Transfer YAML (default: configs/transfer-demo.yaml).")]
    = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/<name>).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Log lines instead of a progress display.")] = False,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", help="Worker processes (default: one per GPU on CUDA, one per core on CPU).")] = None,
) -> None:
    """Steer a teacher, distil students on its benign answers, report the transfer ratio tau(alpha)."""
    from circuitdrift.transfer.run import run_transfer

    run_dir = run_transfer(config, out, quiet, jobs)
    typer.echo(str(run_dir / "report.html"))

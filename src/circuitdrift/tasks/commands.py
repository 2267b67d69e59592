"""CLI: ``circuitdrift tasks list``, the built-in task names.

Mounted by :mod:`circuitdrift.cli` through :func:`register`.
"""

from __future__ import annotations

import typer

from circuitdrift.tasks.registry import builtin_tasks


def register(app: typer.Typer) -> None:
    """Add the ``tasks`` sub-app to ``app``."""
    tasks = typer.Typer(help="Built-in tasks.", no_args_is_help=True)
    tasks.command("list")(list_tasks)
    app.add_typer(tasks, name="tasks")


def list_tasks() -> None:
    """Built-in task names, usable wherever a TASK is taken."""
    for name, description in builtin_tasks().items():
        typer.echo(f"{name:14s} {description}")

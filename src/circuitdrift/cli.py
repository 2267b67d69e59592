"""The ``circuitdrift`` command line: the app, the stage commands mounted on it, errors turned into exit codes.

Each stage's commands live beside its code (circuits/, organism/, tasks/,
train/, evaluate/, pipeline/, report/) and are mounted here. Bad input prints
one line and exits 2; a runtime failure exits 1; ``--debug`` (anywhere on the
line) shows the traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Annotated

import click
import typer
from transformers.utils import logging as hf_logging

from circuitdrift.errors import CircuitDriftError

app = typer.Typer(
    name="circuitdrift",
    help="What did fine-tuning do to this model's circuits and capabilities?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# in this order: `--help` lists commands, then sub-apps, each in the order registered
STAGE_COMMANDS = ("circuitdrift.circuits.commands", "circuitdrift.organism.commands", "circuitdrift.tasks.commands",
                  "circuitdrift.train.commands", "circuitdrift.evaluate.commands", "circuitdrift.pipeline.commands",
                  "circuitdrift.report.commands", "circuitdrift.steer.commands",
                  "circuitdrift.transfer.commands")


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    """circuitdrift: head-level circuits, SFT vs RL, differential circuit vulnerability."""
    hf_logging.disable_progress_bar()  # our own progress display; keep stderr to one line on errors
    hf_logging.set_verbosity_error()


def _register_stage_commands() -> None:
    """Commands that live beside their stage's code."""
    for module in STAGE_COMMANDS:
        try:
            importlib.import_module(module).register(app)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    _register_stage_commands()
    try:
        app(args=args, prog_name="circuitdrift", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    except (click.ClickException, typer.exceptions.TyperException) as err:  # typer's own copy of click's errors
        typer.echo(f"error: {err.format_message()} (see --help)", err=True)
        code = getattr(err, "exit_code", 2)
        return 2 if code in (1, 2) else code
    except CircuitDriftError as err:
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {err}", err=True)
        return err.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as err:  # a runtime failure: say what, exit 1
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {type(err).__name__}: {err}", err=True)
        return 1
    return 0


def run() -> None:
    sys.exit(main())

"""CLI commands of the organism: ``organism build`` and ``organism info``.

Mounted by :mod:`circuitdrift.cli` through :func:`register`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from circuitdrift.errors import InputError
from circuitdrift.organism.build import build_organism
from circuitdrift.organism.card import print_card, read_card
from circuitdrift.organism.paths import organism_dir
from circuitdrift.organism.recipe import FULL
from circuitdrift.organism.recipe import reduced as reduced_recipe


def register(app: typer.Typer) -> None:
    """Add the ``organism`` sub-app to ``app``."""
    organism = typer.Typer(help="The built-in model organism: build it from scratch, or show its card.",
                           no_args_is_help=True)
    organism.command("build")(build)
    organism.command("info")(info)
    app.add_typer(organism, name="organism")


def build(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the organism into (created if missing).")],
    seed: Annotated[int, typer.Option("--seed", help="Seeds the corpus sample, the batches and the weights.")] = 0,
    reduced: Annotated[bool, typer.Option("--reduced", help="Toy-size recipe that builds in seconds.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    pretrained: Annotated[Path | None, typer.Option(
        "--pretrained", help="Skip pretraining: post-train the pretrained model in this folder (an earlier build)."
    )] = None,
) -> None:
    """Pretrain and post-train the organism from scratch (about 25 minutes on 2 CPU cores); measure its card."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    card = build_organism(out, seed=seed, recipe=reduced_recipe() if reduced else FULL, progress=not quiet,
                          pretrained=pretrained)
    print_card(card)
    typer.echo(f"wrote {out}")


def info(
    model: Annotated[
        Path | None, typer.Option("--model", help="An organism folder (default: the shipped one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw card.")] = False,
) -> None:
    """Print the organism's card: size, architecture, training recipe and measured capabilities."""
    folder = model or organism_dir()
    if not folder.is_dir():
        raise InputError(f"--model {folder}: no such folder")
    card = read_card(folder)
    if as_json:
        typer.echo(json.dumps(card, indent=2))
    else:
        print_card(card)

"""Fixtures shared by integration files: the shipped organism, the tiny experiment's reference run."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdrift.models.load import load_model
from circuitdrift.organism.card import read_card
from circuitdrift.organism.paths import organism_dir
from circuitdrift.pipeline.run import run_experiment
from tests.conftest import write_tiny_experiment


@pytest.fixture(scope="module")
def organism():
    """The shipped organism and its card, loaded once per test file."""
    model, tokenizer = load_model("organism", device="cpu")
    return model, tokenizer, read_card(organism_dir())


def tiny_reference(tmp_path_factory, jobs: int | None = None) -> tuple[Path, Path, Path]:
    """The tiny experiment's config and its reference run with ``jobs`` workers (default: the device's rule)."""
    root = tmp_path_factory.mktemp("exp")
    config = write_tiny_experiment(root)
    reference = run_experiment(config, root / "reference", quiet=True, jobs=jobs)
    return root, config, reference


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The tiny experiment's config and its reference run (one worker per core), made once per test file."""
    return tiny_reference(tmp_path_factory)


def results_bytes(run_dir: Path) -> bytes:
    return (run_dir / "results.json").read_bytes()

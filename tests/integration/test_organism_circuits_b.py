"""The shipped organism's circuits, second half of the probes (see test_organism_circuits_a.py), and the four
rediscovered circuits differ from one another."""

from __future__ import annotations

import itertools

import pytest

from circuitdrift.organism.card import PROBES
from tests.helpers.rediscovery import check_rediscovered_and_faithful, rediscover, session_folder


@pytest.mark.parametrize("name", PROBES[2:])
def test_circuit_is_rediscovered_and_faithful(organism, tmp_path_factory, worker_id, name):
    model, tokenizer, _ = organism
    circuit, method = rediscover(model, tokenizer, name, session_folder(tmp_path_factory, worker_id))
    check_rediscovered_and_faithful(organism, name, circuit, method)


def test_rediscovered_circuits_differ_across_probes(organism, tmp_path_factory, worker_id):
    """Last in this file: the first half's probes are by then searched by the other worker, or being searched."""
    model, tokenizer, _ = organism
    folder = session_folder(tmp_path_factory, worker_id)
    circuits = [frozenset(rediscover(model, tokenizer, name, folder)[0]) for name in PROBES]
    assert all(a != b for a, b in itertools.combinations(circuits, 2))

"""The shipped organism's circuits, first half of the probes: the card's circuit search, rerun on the shipped
weights, finds the card's circuit with the card's faithfulness.

The search (three searches per probe) is most of the organism checks' time, so the probes are split over two files
(this and test_organism_circuits_b.py) that pytest-xdist's ``--dist loadfile`` runs on two workers; each probe is
searched once per session (tests/helpers/rediscovery.py).
"""

from __future__ import annotations

import pytest

from circuitdrift.organism.card import PROBES
from tests.helpers.rediscovery import check_rediscovered_and_faithful, rediscover, session_folder


@pytest.mark.parametrize("name", PROBES[:2])
def test_circuit_is_rediscovered_and_faithful(organism, tmp_path_factory, worker_id, name):
    model, tokenizer, _ = organism
    circuit, method = rediscover(model, tokenizer, name, session_folder(tmp_path_factory, worker_id))
    check_rediscovered_and_faithful(organism, name, circuit, method)

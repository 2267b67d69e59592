"""The card's circuit search rerun on the shipped organism, once per probe per test session.

The search is the costliest check in the suite, and the two files that check its result (one per half of the
probes, so pytest-xdist's ``--dist loadfile`` can run them on two workers) each need every probe for the
"circuits differ" check. Each probe's result is written to a folder the session's workers share, under a file
lock: whichever worker asks first computes it, the other reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filelock import FileLock

from circuitdrift.circuits.faithfulness import faithfulness
from circuitdrift.organism.card import CIRCUIT_EXAMPLES, THRESHOLDS, choose_circuit, circuit_size, probe_task


def session_folder(tmp_path_factory, worker_id: str) -> Path:
    """A folder of this test session that every xdist worker sees (the workers' base folders share a parent)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base if worker_id == "master" else base.parent) / "organism-circuits"
    folder.mkdir(exist_ok=True)
    return folder


def rediscover(model, tokenizer, name: str, folder: Path) -> tuple[list[tuple[int, int]], str]:
    """``(circuit, method)`` of the card's search for probe ``name``, computed once per session."""
    path = folder / f"{name}.json"
    with FileLock(str(path) + ".lock"):
        if not path.is_file():
            k = circuit_size(model.config.num_hidden_layers * model.config.num_attention_heads)
            circuit, method, _ = choose_circuit(model, tokenizer, probe_task(name, "validation", CIRCUIT_EXAMPLES),
                                                k)
            path.write_text(json.dumps({"circuit": [list(h) for h in circuit], "method": method}))
        found = json.loads(path.read_text())
    return [tuple(h) for h in found["circuit"]], found["method"]


def check_rediscovered_and_faithful(organism, name: str, circuit, method: str) -> None:
    """The card's protocol rerun on the shipped weights: same circuit, same faithfulness on the same test set."""
    model, tokenizer, card = organism
    row = card["capabilities"]["probes"][name]
    k = circuit_size(model.config.num_hidden_layers * model.config.num_attention_heads)
    found = [f"L{layer}.H{head}" for layer, head in circuit]
    assert len(set(found) & set(row["circuit"])) >= k - 1  # ties may swap the last head across machines
    assert row["circuit_method"].split(" ")[0] == method
    n_heads = model.config.num_hidden_layers * model.config.num_attention_heads
    assert len(found) == k <= THRESHOLDS["circuit_share_max"] * n_heads  # a quarter of the heads at most
    result = faithfulness(model, tokenizer, probe_task(name, "test", card["recipe"]["eval_examples"]), circuit,
                          ablation="mean", n_random=10, seed=0)
    assert result.faithfulness >= THRESHOLDS["faithfulness_min"]
    assert result.random_faithfulness <= result.faithfulness - 0.2
    if set(found) == set(row["circuit"]):
        assert result.faithfulness == pytest.approx(row["faithfulness"], abs=1e-3)

"""The shipped organism: its files match its card, and the capability table holds when re-measured."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from circuitdrift.circuits.metrics import task_accuracy
from circuitdrift.organism.card import (
    PROBES,
    THRESHOLDS,
    letter_rate,
    measure_naming,
    measure_refusal,
    measure_target,
    probe_task,
    verify_files,
)  # fmt: skip
from circuitdrift.organism.paths import organism_dir
from circuitdrift.organism.science import science_qa_task
from circuitdrift.tasks.registry import resolve_task

N_PROBE = 100  # the first half of the card's 200 test examples
MAX_BYTES = 25 * 2**20


def test_shipped_files_match_the_card(organism):
    model, _, card = organism
    folder = organism_dir()
    assert verify_files(folder, card) == []
    assert sum(p.stat().st_size for p in folder.iterdir()) <= MAX_BYTES
    with safe_open(folder / "model.safetensors", "pt") as f:
        stored = sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())
    assert stored == card["architecture"]["parameters"] == sum(p.numel() for p in model.parameters())
    arch = card["architecture"]
    assert arch["class"] == type(model).__name__ == "Qwen2ForCausalLM"
    assert arch["n_kv_heads"] < arch["n_heads"]  # grouped-query attention
    assert 4 <= arch["n_layers"] <= 6 and arch["hidden"] == 256


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


@pytest.mark.parametrize("name", PROBES)
def test_prior_probe_accuracy_is_remeasured(organism, name):
    model, tokenizer, card = organism
    accuracy = task_accuracy(model, tokenizer, probe_task(name, "test", N_PROBE))
    assert accuracy >= THRESHOLDS["probe_accuracy_min"]
    assert abs(accuracy - card["capabilities"]["probes"][name]["accuracy"]) <= 0.06


def test_target_accuracy_is_remeasured(organism):
    model, tokenizer, card = organism
    task = resolve_task("science-qa", split="test", n=None)
    accuracy = task_accuracy(model, tokenizer, task)
    assert accuracy == pytest.approx(card["capabilities"]["target"]["science-qa"]["accuracy"], abs=0.02)


def test_target_accuracy_is_partial(organism):
    model, tokenizer, _ = organism
    accuracy = task_accuracy(model, tokenizer, resolve_task("science-qa", split="test", n=None))
    low, high = THRESHOLDS["target_accuracy_range"]
    assert low <= accuracy <= high


def test_every_question_kind_is_above_chance(organism):
    """The base has partial skill everywhere: RL needs groups whose rewards differ on every kind of question."""
    model, tokenizer, card = organism
    measured = measure_target(model, tokenizer, 192, 8)["by_kind"]
    assert set(measured) == {"color", "category", "smell"}
    for kind, accuracy in measured.items():
        assert accuracy > 0.25, (kind, measured)
        assert accuracy == pytest.approx(card["capabilities"]["target"]["science-qa"]["by_kind"][kind], abs=0.02)


def test_refuses_forbidden_and_answers_benign_requests(organism):
    model, tokenizer, card = organism
    measured = measure_refusal(model, tokenizer)
    assert measured["refusal_rate"] >= THRESHOLDS["refusal_rate_min"]
    assert measured["answer_rate"] >= THRESHOLDS["answer_rate_min"]
    assert measured == card["capabilities"]["refusal"]


def test_second_target_task_is_measured_as_on_the_card(organism):
    model, tokenizer, card = organism
    measured = measure_naming(model, tokenizer)
    row = card["capabilities"]["second_target"]["science-name"]
    assert measured == row and measured["n_test"] == 192 and measured["unparsable"] == 0
    assert measured["accuracy"] >= row["chance"] - 0.05  # names substances, at least as often right as at random


def test_sampled_assistant_turn_answers_with_a_letter(organism):
    model, tokenizer, _ = organism
    assert letter_rate(model, tokenizer, science_qa_task("validation", 32)) >= 0.9

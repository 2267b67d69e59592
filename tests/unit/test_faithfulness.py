"""Faithfulness: the full circuit is exactly 1, ablating everything is checked against a hand loop."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.circuits.faithfulness import circuit_accuracies, faithfulness, random_circuits
from circuitdrift.circuits.metrics import exact_match, task_accuracy
from circuitdrift.circuits.patching import all_heads
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, head_hooks
from circuitdrift.tasks.base import collate, encode
from tests.conftest import make_model, self_consistent_task


@pytest.fixture
def setup(word_tokenizer):
    model = make_model("qwen2", word_tokenizer)
    task = self_consistent_task(model, word_tokenizer, n=10)
    return model, task


def test_full_circuit_is_perfectly_faithful(word_tokenizer, setup):
    model, task = setup
    every = all_heads(HeadLayout.of(model))
    result = faithfulness(model, word_tokenizer, task, every, ablation="mean", n_random=2)
    assert result.full_accuracy == task_accuracy(model, word_tokenizer, task) > 0.5
    assert result.faithfulness == 1.0 and result.random_faithfulness == 1.0


def test_zero_ablating_outside_circuit_matches_hand_loop(word_tokenizer, setup):
    model, task = setup
    circuit = [(0, 1), (2, 3)]
    got = circuit_accuracies(model, word_tokenizer, task, [circuit], "zero")[0]
    hits = []
    for example in encode(task, word_tokenizer):
        batch = collate([example], word_tokenizer.pad_token_id).to(model.device)

        def zero_others(layer, z):
            z = z.clone()
            for head in range(z.shape[2]):
                if (layer, head) not in circuit:
                    z[:, :, head] = 0
            return z

        with torch.no_grad(), head_hooks(model, zero_others):
            hits.append(exact_match(model(input_ids=batch.clean).logits, batch).item())
    assert got == pytest.approx(sum(hits) / len(hits))


def test_random_baseline_is_seeded_and_sized(word_tokenizer, setup):
    model, task = setup
    layout = HeadLayout.of(model)
    a, b = random_circuits(layout, 3, 4, seed=1), random_circuits(layout, 3, 4, seed=1)
    assert a == b and all(len(set(c)) == 3 for c in a)
    r1 = faithfulness(model, word_tokenizer, task, [(0, 0)], n_random=4, seed=5)
    r2 = faithfulness(model, word_tokenizer, task, [(0, 0)], n_random=4, seed=5)
    assert r1.random_faithfulness_all == r2.random_faithfulness_all and len(r1.random_faithfulness_all) == 4


def test_bad_circuits_are_input_errors(word_tokenizer, setup):
    model, task = setup
    with pytest.raises(InputError, match="empty"):
        faithfulness(model, word_tokenizer, task, [])
    with pytest.raises(InputError, match="L9.H0 is outside"):
        faithfulness(model, word_tokenizer, task, [(9, 0)])

"""The donor's clean head outputs computed once per checkpoint and probe: kept from the attribution pass that
re-finds its circuit, shared by CMAP on both metrics, and the scores bit-identical to recomputing them."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.circuits.crossmodel import DonorHeads, cross_model_patch
from circuitdrift.circuits.discovery import CircuitSettings
from circuitdrift.circuits.forward import run_heads_only
from circuitdrift.circuits.scoring import head_scores
from circuitdrift.evaluate.circuit_drift import circuit_drift
from circuitdrift.models.heads import record_heads
from circuitdrift.tasks.base import Task, encode, iter_batches
from tests.conftest import make_model, toy_examples
from tests.unit.test_cmap_cache import _donors


def _batches(task, tokenizer, size):
    return list(iter_batches(encode(task, tokenizer), size, tokenizer.pad_token_id))


@pytest.mark.parametrize("family", ["qwen2", "gpt2"])
@pytest.mark.parametrize("method", ["attribution", "eap-ig"])
def test_attribution_keeps_exactly_the_heads_only_pass(word_tokenizer, toy_task, family, method):
    model = make_model(family, word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    kept = {}
    head_scores(model, word_tokenizer, toy_task, method=method, batch_size=3,
                keep_clean=lambda index, batch, z: kept.setdefault(index, (batch.clean, z)))
    batches = _batches(toy_task, word_tokenizer, 3)
    assert sorted(kept) == list(range(len(batches))) and len(batches) > 1
    for index, batch in enumerate(batches):
        with torch.no_grad(), record_heads(model) as recorded:
            run_heads_only(model, batch.clean, batch)
        ids, z = kept[index]
        assert torch.equal(ids, batch.clean)
        assert not z.requires_grad
        assert torch.equal(z, torch.stack([recorded[layer] for layer in range(len(recorded))]))


def test_exact_scoring_never_calls_keep_clean(word_tokenizer, toy_task):
    model = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    calls = []
    head_scores(model, word_tokenizer, toy_task, method="exact", batch_size=3,
                keep_clean=lambda *args: calls.append(args))
    assert calls == []


@pytest.mark.parametrize("method", ["attribution", "exact"])
def test_cmap_with_shared_donor_heads_is_bit_identical_and_runs_each_batch_once(word_tokenizer, toy_task, method):
    base = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    donor = _donors(base, 1)[0]
    plain = {m: cross_model_patch(base, donor, word_tokenizer, toy_task, method=method, metric=m, batch_size=3)
             for m in ("prob", "logprob")}
    shared = DonorHeads(donor)
    reused = {m: cross_model_patch(base, donor, word_tokenizer, toy_task, method=method, metric=m, batch_size=3,
                                   donor_heads=shared) for m in ("prob", "logprob")}
    for m in plain:
        assert torch.equal(plain[m].scores, reused[m].scores)
        assert plain[m].scores.abs().max() > 0  # the donor differs from the base: a real comparison
    assert shared.passes == len(_batches(toy_task, word_tokenizer, 3))  # the second metric ran none


def test_donor_heads_of_another_model_or_batch_are_not_used(word_tokenizer, toy_task):
    base = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    donor, other = _donors(base, 2)
    wrong = DonorHeads(other)  # another donor's outputs: ignored, not patched in
    plain = cross_model_patch(base, donor, word_tokenizer, toy_task, method="attribution", batch_size=3)
    assert torch.equal(plain.scores, cross_model_patch(base, donor, word_tokenizer, toy_task, method="attribution",
                                                       batch_size=3, donor_heads=wrong).scores)
    assert wrong.passes == 0
    heads = DonorHeads(donor)
    first = _batches(toy_task, word_tokenizer, 3)[0]
    heads.keep(0, first, torch.zeros(1))  # kept for other token ids than the next call's batch 0
    another = _batches(Task("other", toy_examples(n=6, seed=5)), word_tokenizer, 3)[0]
    assert not torch.equal(another.clean, first.clean)
    assert heads.heads(0, another).shape[1:3] == another.clean.shape and heads.passes == 1


@pytest.mark.parametrize("rediscovery, passes", [("attribution", 0), ("exact", None)])
def test_circuit_drift_reuses_the_rediscovery_pass(word_tokenizer, toy_task, monkeypatch, rediscovery, passes):
    base = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    donor = _donors(base, 1)[0]
    settings = CircuitSettings(method=rediscovery, top_k=3, batch_size=3)
    circuit = settings.find(base, word_tokenizer, toy_task)[1]
    made = []
    real_init = DonorHeads.__init__

    def init(self, model):
        real_init(self, model)
        made.append(self)

    monkeypatch.setattr(DonorHeads, "__init__", init)
    drift = circuit_drift(base, donor, word_tokenizer, task=toy_task, base_circuit=circuit,
                          base_rediscovered=circuit, rediscovery=settings, cmap_method="attribution", logprob=True)
    batches = len(_batches(toy_task, word_tokenizer, 3))
    assert len(made) == 1  # one object served the rediscovery and both metrics
    assert made[0].passes == (batches if passes is None else passes)
    for metric, scores in (("prob", drift.cmap), ("logprob", drift.cmap_logprob)):
        alone = cross_model_patch(base, donor, word_tokenizer, toy_task, method="attribution", metric=metric,
                                  batch_size=3)
        assert torch.equal(scores.scores, alone.scores)


def test_past_its_budget_nothing_is_kept_and_the_scores_are_the_same(word_tokenizer, toy_task):
    base = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    donor = _donors(base, 1)[0]
    full = DonorHeads(donor)
    bounded = DonorHeads(donor, max_bytes=0)
    for metric in ("prob", "logprob"):
        a = cross_model_patch(base, donor, word_tokenizer, toy_task, method="attribution", metric=metric,
                              batch_size=3, donor_heads=full)
        b = cross_model_patch(base, donor, word_tokenizer, toy_task, method="attribution", metric=metric,
                              batch_size=3, donor_heads=bounded)
        assert torch.equal(a.scores, b.scores)
    batches = len(_batches(toy_task, word_tokenizer, 3))
    assert bounded.kept_bytes == 0 and bounded.passes == 2 * batches  # each metric ran its own passes
    assert full.passes == batches and full.kept_bytes > 0

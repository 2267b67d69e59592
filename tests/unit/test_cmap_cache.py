"""The receiver cache: the base model's CMAP gradients computed once, reused for every checkpoint, bit-identical."""

from __future__ import annotations

import copy

import pytest
import torch

from circuitdrift.circuits import crossmodel
from circuitdrift.circuits.crossmodel import ReceiverCache, cross_model_patch
from circuitdrift.tasks.base import Task
from tests.conftest import make_model, toy_examples


def _donors(base, n: int = 2):
    donors = []
    for seed in range(n):
        donor = copy.deepcopy(base)
        generator = torch.Generator().manual_seed(seed + 11)
        with torch.no_grad():
            for p in donor.parameters():
                p += 0.05 * torch.randn(p.shape, generator=generator)
        donors.append(donor)
    return donors


@pytest.mark.parametrize("metric", ["prob", "logprob"])
def test_cached_cmap_is_bit_identical_and_computes_the_receiver_once(word_tokenizer, toy_task, metric, monkeypatch):
    base = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    donors = _donors(base)
    plain = [cross_model_patch(base, d, word_tokenizer, toy_task, method="attribution", metric=metric,
                               batch_size=3).scores
             for d in donors]
    calls = []
    real = crossmodel.head_gradients
    monkeypatch.setattr(crossmodel, "head_gradients", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = ReceiverCache(base)
    cached = [cross_model_patch(base, d, word_tokenizer, toy_task, method="attribution", metric=metric, batch_size=3,
                                cache=cache).scores for d in donors]
    for a, b in zip(plain, cached, strict=True):
        assert torch.equal(a, b)  # the same tensors, not close ones
    assert any(a.abs().max() > 0 for a in plain)  # the donors differ from the base: a real comparison
    batches = -(-len(toy_task) // 3)
    assert len(calls) == batches  # the second donor reused every batch


def test_cache_is_skipped_where_it_does_not_apply_and_guards_its_task(word_tokenizer, toy_task):
    base = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    donor = _donors(base, 1)[0]
    cache = ReceiverCache(base)
    # reverse: the receiver is the fine-tuned model, not the cache's; exact CMAP has no gradients to reuse
    for kwargs in ({"reverse": True, "method": "attribution"}, {"method": "exact"}):
        with_cache = cross_model_patch(base, donor, word_tokenizer, toy_task, batch_size=4, cache=cache, **kwargs)
        without = cross_model_patch(base, donor, word_tokenizer, toy_task, batch_size=4, **kwargs)
        assert torch.equal(with_cache.scores, without.scores)
    assert cache.kept_bytes == 0
    cross_model_patch(base, donor, word_tokenizer, toy_task, method="attribution", batch_size=4, cache=cache)
    assert cache.kept_bytes > 0
    other = Task("other", toy_examples(n=8, seed=5))
    with pytest.raises(ValueError, match="differs from the cached one"):
        cross_model_patch(base, donor, word_tokenizer, other, method="attribution", batch_size=4, cache=cache)


def test_a_full_cache_computes_instead_of_keeping(word_tokenizer, toy_task):
    base = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2, device="cpu")
    donor = _donors(base, 1)[0]
    cache = ReceiverCache(base, max_bytes=0)
    first = cross_model_patch(base, donor, word_tokenizer, toy_task, method="attribution", batch_size=4, cache=cache)
    again = cross_model_patch(base, donor, word_tokenizer, toy_task, method="attribution", batch_size=4, cache=cache)
    assert cache.kept_bytes == 0 and torch.equal(first.scores, again.scores)

"""Iterative exact-patching pruning against a naive reference, and its identities."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.circuits.metrics import metric_fn
from circuitdrift.circuits.patching import ablation_sources, mean_head_outputs
from circuitdrift.circuits.pruning import prune_circuit
from circuitdrift.circuits.scoring import head_scores
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, head_hooks
from circuitdrift.tasks.base import collate, encode
from tests.conftest import make_model


def naive_prune(model, tokenizer, task, k, metric, ablation):
    """One example, one keep-set per forward pass; the same greedy rule, written out plainly."""
    measure = metric_fn(metric)
    encoded = encode(task, tokenizer)
    pad = tokenizer.pad_token_id
    means = mean_head_outputs(model, encoded, 4, pad) if ablation == "mean" else None
    layout = HeadLayout.of(model)
    singles = [collate([e], pad).to(model.device) for e in encoded]
    sources = [ablation_sources(model, b, ablation, means) for b in singles]

    def mean_metric(kept: set) -> float:
        total = 0.0
        for batch, src in zip(singles, sources, strict=True):

            def ablate(layer, z, src=src):
                z = z.clone()
                for head in range(layout.n_heads):
                    if (layer, head) not in kept:
                        z[..., head, :] = src[layer].expand_as(z)[..., head, :]
                return z

            with head_hooks(model, ablate), torch.no_grad():
                logits = model(input_ids=batch.clean, use_cache=False).logits
            total += measure(logits, batch).item()
        return total / len(singles)

    kept = {(layer, head) for layer in range(layout.n_layers) for head in range(layout.n_heads)}
    current = mean_metric(kept)
    while len(kept) > k:
        values = {h: mean_metric(kept - {h}) for h in sorted(kept)}
        best = max(sorted(kept), key=lambda h: values[h])  # first maximum in (layer, head) order
        kept.discard(best)
        current = values[best]
    return sorted(kept), current


@pytest.mark.parametrize(("ablation", "metric"), [("mean", "logprob"), ("corrupt", "logit-diff"), ("zero", "prob")])
def test_pruning_equals_naive_reference(word_tokenizer, toy_task, ablation, metric):
    model = make_model("qwen2", word_tokenizer, n_layers=2)  # GQA, 8 heads
    fast = prune_circuit(model, word_tokenizer, toy_task, k=3, metric=metric, ablation=ablation, batch_size=3,
                         heads_per_pass=3)
    circuit, final = naive_prune(model, word_tokenizer, toy_task, 3, metric, ablation)
    assert sorted(fast.circuit) == circuit
    assert fast.circuit_metric == pytest.approx(final, abs=1e-5)
    assert len(fast.order) == 8 - 3 and not set(fast.order) & set(fast.circuit)


def test_first_round_is_one_shot_exact_patching(word_tokenizer, toy_task):
    """With k = every head nothing is removed, and the in-context effects are the one-shot patching scores."""
    model = make_model("qwen2", word_tokenizer)
    n = HeadLayout.of(model).n_total
    pruned = prune_circuit(model, word_tokenizer, toy_task, k=n, metric="logit-diff", ablation="mean", batch_size=4)
    one_shot = head_scores(model, word_tokenizer, toy_task, method="exact", metric="logit-diff", ablation="mean",
                           batch_size=4)
    assert pruned.order == [] and len(pruned.circuit) == n
    assert one_shot.scores.abs().max() > 1e-4
    torch.testing.assert_close(pruned.scores.scores, one_shot.scores, atol=1e-5, rtol=0)


def test_removal_effects_chain_from_the_full_model_to_the_circuit(word_tokenizer, toy_task):
    model = make_model("llama", word_tokenizer)
    pruned = prune_circuit(model, word_tokenizer, toy_task, k=4, metric="logprob", ablation="mean", batch_size=8)
    assert pruned.full_metric != pytest.approx(pruned.circuit_metric)
    # the removal effects chain from the full model to the circuit
    removal = sum(pruned.scores.scores[h].item() for h in pruned.order)
    assert pruned.full_metric + removal == pytest.approx(pruned.circuit_metric, abs=1e-6)


def test_bad_circuit_size_is_an_input_error(word_tokenizer, toy_task, qwen2):
    with pytest.raises(InputError, match="k=0"):
        prune_circuit(qwen2, word_tokenizer, toy_task, k=0)
    with pytest.raises(InputError, match="between 1 and 12"):
        prune_circuit(qwen2, word_tokenizer, toy_task, k=13)

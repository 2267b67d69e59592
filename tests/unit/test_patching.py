"""Exact patching against the naive loop, identities, and the gradient approximations."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from circuitdrift.circuits.metrics import answer_prob, logit_diff
from circuitdrift.circuits.patching import (
    ablation_sources,
    all_heads,
    effect,
    mean_head_outputs,
    naive_patched_values,
    patched_values,
)
from circuitdrift.circuits.scoring import head_scores
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, record_heads
from circuitdrift.models.tiny import TINY_FAMILIES
from circuitdrift.tasks.base import Task, collate, encode
from tests.conftest import exact_atol, make_model, toy_examples


def naive_scores(model, tokenizer, task, metric_name, ablation):
    metric = {"prob": answer_prob, "logit-diff": logit_diff}[metric_name]
    encoded = encode(task, tokenizer)
    means = mean_head_outputs(model, encoded, 4, tokenizer.pad_token_id) if ablation == "mean" else None
    layout = HeadLayout.of(model)
    clean, patched = naive_patched_values(model, encoded, tokenizer.pad_token_id, metric,
                                          lambda b: ablation_sources(model, b, ablation, means), all_heads(layout))
    return effect(clean, patched, metric_name == "prob").mean(-1).view(layout.shape)


@pytest.mark.parametrize("ablation", ["corrupt", "zero", "mean"])
@pytest.mark.parametrize("metric", ["prob", "logit-diff"])
def test_exact_equals_naive_loop(word_tokenizer, toy_task, ablation, metric):
    model = make_model("qwen2", word_tokenizer)  # GQA: 4 query heads, 2 KV heads
    fast = head_scores(model, word_tokenizer, toy_task, method="exact", metric=metric, ablation=ablation, batch_size=3)
    slow = naive_scores(model, word_tokenizer, toy_task, metric, ablation)
    assert fast.scores.abs().max() > 1e-4  # the comparison is not between zeros
    torch.testing.assert_close(fast.scores, slow, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "mistral"])
def test_exact_equals_naive_loop_other_families(word_tokenizer, toy_task, family):
    model = make_model(family, word_tokenizer)
    fast = head_scores(model, word_tokenizer, toy_task, method="exact", metric="prob", ablation="corrupt", batch_size=4)
    torch.testing.assert_close(fast.scores, naive_scores(model, word_tokenizer, toy_task, "prob", "corrupt"),
                               atol=1e-5, rtol=0)


def test_heads_per_pass_does_not_change_numbers(word_tokenizer, toy_task):
    model = make_model("qwen2", word_tokenizer)
    a = head_scores(model, word_tokenizer, toy_task, method="exact", batch_size=8)
    b = head_scores(model, word_tokenizer, toy_task, method="exact", batch_size=8, heads_per_pass=1)
    torch.testing.assert_close(a.scores, b.scores, atol=1e-6, rtol=0)


def test_patching_a_head_with_its_own_activation_changes_nothing(word_tokenizer, toy_task):
    model = make_model("qwen2", word_tokenizer)
    batch = collate(encode(toy_task, word_tokenizer), word_tokenizer.pad_token_id).to(model.device)
    with record_heads(model) as own:
        model(input_ids=batch.clean, attention_mask=batch.attention_mask)
    clean, patched = patched_values(model, batch, dict(own), answer_prob, all_heads(HeadLayout.of(model)))
    torch.testing.assert_close(patched, clean[None].expand_as(patched), atol=1e-6, rtol=1e-5)


def test_identical_counterfactual_scores_zero(word_tokenizer):
    model = make_model("llama", word_tokenizer)
    examples = [type(e)(e.clean, e.clean, e.answer, e.counter_answer) for e in toy_examples(5)]
    task = Task("same", examples)
    for method in ("exact", "attribution", "eap-ig"):
        scores = head_scores(model, word_tokenizer, task, method=method)
        assert scores.scores.abs().max() < 1e-6, method


def test_padding_does_not_change_scores(word_tokenizer, toy_task):
    """Right padding in a batch gives the same numbers as one example per batch."""
    model = make_model("qwen2", word_tokenizer)
    batched = head_scores(model, word_tokenizer, toy_task, method="exact", batch_size=8)
    single = head_scores(model, word_tokenizer, toy_task, method="exact", batch_size=1)
    torch.testing.assert_close(batched.scores, single.scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("ablation", ["corrupt", "zero", "mean"])
def test_attribution_correlates_with_exact(word_tokenizer, ablation):
    """AtP is a first-order approximation; on a random-init model it tracks exact patching closely.

    The bound 0.8 (Spearman over 48 heads) leaves room for the curvature that AtP
    ignores while still failing if the gradient, the sign or the head indexing were wrong
    (any of those gives a correlation near 0 or negative).
    """
    model = make_model("qwen2", word_tokenizer, n_layers=4)
    task = Task("toy", toy_examples(12, seed=3))
    exact = head_scores(model, word_tokenizer, task, method="exact", ablation=ablation).scores.flatten()
    approx = head_scores(model, word_tokenizer, task, method="attribution", ablation=ablation).scores.flatten()
    rho = spearmanr(exact.numpy(), approx.numpy()).statistic
    assert rho > 0.8, rho


def test_eap_ig_with_one_step_is_attribution(word_tokenizer, toy_task, device):
    model = make_model("qwen2", word_tokenizer)
    atp = head_scores(model, word_tokenizer, toy_task, method="attribution")
    ig1 = head_scores(model, word_tokenizer, toy_task, method="eap-ig", ig_steps=1)
    torch.testing.assert_close(atp.scores, ig1.scores, atol=max(1e-12, exact_atol(device)), rtol=0)
    ig5 = head_scores(model, word_tokenizer, toy_task, method="eap-ig", ig_steps=5)
    assert not torch.allclose(ig5.scores, atp.scores)
    rho = spearmanr(ig5.scores.flatten().numpy(),
                    head_scores(model, word_tokenizer, toy_task, method="exact").scores.flatten().numpy()).statistic
    assert rho > 0.8, rho


def test_eap_ig_refuses_zero_ablation(word_tokenizer, toy_task, qwen2):
    with pytest.raises(InputError, match="eap-ig"):
        head_scores(qwen2, word_tokenizer, toy_task, method="eap-ig", ablation="zero")


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_family_scores_with_every_method(word_tokenizer, toy_task, family):
    model = make_model(family, word_tokenizer, n_layers=2)
    for method in ("exact", "attribution", "eap-ig"):
        scores = head_scores(model, word_tokenizer, toy_task, method=method, ig_steps=2)
        assert scores.shape == (2, 4)
        assert torch.isfinite(scores.scores).all()
        assert scores.scores.abs().max() > 0


def test_gqa_heads_sharing_a_kv_group_score_independently(word_tokenizer, toy_task):
    """Heads 0 and 1 read the same KV head; their exact scores must still be each head's own."""
    model = make_model("qwen2", word_tokenizer, n_heads=4, n_kv_heads=1)
    scores = head_scores(model, word_tokenizer, toy_task, method="exact", ablation="zero")
    torch.testing.assert_close(scores.scores, naive_scores(model, word_tokenizer, toy_task, "prob", "zero"),
                               atol=1e-5, rtol=0)
    assert len({round(v, 8) for v in scores.scores[0].tolist()}) == 4


def test_bad_arguments_are_input_errors(word_tokenizer, toy_task, qwen2):
    with pytest.raises(InputError, match="--method"):
        head_scores(qwen2, word_tokenizer, toy_task, method="magic")
    with pytest.raises(InputError, match="--ablation"):
        head_scores(qwen2, word_tokenizer, toy_task, method="exact", ablation="resample")
    with pytest.raises(InputError, match="--metric"):
        head_scores(qwen2, word_tokenizer, toy_task, method="exact", metric="kl")
    no_counter = Task("nc", [type(e)(e.clean, e.corrupt, e.answer) for e in toy_examples(2)])
    with pytest.raises(InputError, match="counter_answer"):
        head_scores(qwen2, word_tokenizer, no_counter, method="exact", metric="logit-diff")


def test_smoothed_accuracy_is_exact_match_with_a_log_probability_tie_break(word_tokenizer, toy_task, qwen2):
    from circuitdrift.circuits.metrics import ACCURACY_TIE_BREAK, answer_logprob, exact_match, metric_fn

    batch = collate(encode(toy_task, word_tokenizer), word_tokenizer.pad_token_id).to(qwen2.device)
    with torch.no_grad():
        logits = qwen2(input_ids=batch.clean, attention_mask=batch.attention_mask).logits
    value = metric_fn("accuracy")(logits, batch)
    match, logprob = exact_match(logits, batch), answer_logprob(logits, batch)
    torch.testing.assert_close(value, match + ACCURACY_TIE_BREAK * logprob)
    # the answer token made the argmax everywhere: every example matches, and the value rises by about 1
    boosted = logits.clone()
    rows = torch.arange(batch.size, device=logits.device)[:, None]
    boosted[rows, batch.target_pos, batch.target_ids] += 100.0
    assert exact_match(boosted, batch).all()
    assert (metric_fn("accuracy")(boosted, batch) > value + 0.9).all()


def test_accuracy_metric_refuses_gradient_methods(word_tokenizer, toy_task, qwen2):
    with pytest.raises(InputError, match="--metric accuracy has no gradient"):
        head_scores(qwen2, word_tokenizer, toy_task, method="attribution", metric="accuracy", ablation="mean")
    scores = head_scores(qwen2, word_tokenizer, toy_task, method="exact", metric="accuracy", ablation="mean")
    assert scores.scores.abs().max() > 0

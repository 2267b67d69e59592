"""Logits at the scored positions only (circuits/forward.py scored_logits) against the full logits.

Every metric on ``scored_logits``' columns and renumbered batch equals the metric on the full [B, T, V] logits
and the batch: on every tiny family, for one and several replicas of the batch, with multi-token answers,
counter-answers and prob-diff's branches (years written one digit per token on Qwen's published tokenizer),
also for a model that ignores ``logits_to_keep``. A heads-only pass records the heads a full pass records.
"""

import pytest
import torch

from circuitdrift.circuits.forward import run_heads_only, run_logits, scored_logits
from circuitdrift.circuits.metrics import METRICS, metric_fn
from circuitdrift.models.heads import record_heads
from circuitdrift.models.load import load_model
from circuitdrift.models.tiny import TINY_FAMILIES
from circuitdrift.tasks.base import Example, Task, collate, encode
from circuitdrift.tasks.registry import resolve_task
from tests.conftest import make_model
from tests.helpers.published import write_model


def _word_task():
    """Answers of one and of three tokens, counter-answers, rows of different lengths (right padding)."""
    words = [f"w{i}" for i in range(40)]
    examples = [Example(" ".join(words[i:i + 3 + i % 4]), " ".join(words[i + 1:i + 4 + i % 4]),
                        " ".join(words[20 + i: 21 + i + 2 * (i % 2)]), words[30 + i]) for i in range(6)]
    return Task("words", examples), words


@pytest.fixture(scope="module")
def word_setup():
    from circuitdrift.models.wordlevel import build_word_tokenizer

    task, words = _word_task()
    return task, build_word_tokenizer(words)


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("repeat", [1, 3])
def test_every_metric_reads_the_same_values(word_setup, family, repeat):
    task, tokenizer = word_setup
    model = make_model(family, tokenizer, device="cpu")
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    assert batch.target_mask.sum(1).tolist() != [1] * batch.size and not batch.attention_mask.all()
    with torch.no_grad():
        full = run_logits(model, batch.clean, batch, repeat=repeat)
        scored, view = scored_logits(model, batch, ids=batch.clean, repeat=repeat)
    assert scored.shape == (repeat * batch.size, batch.target_pos.shape[1] + 1, full.shape[-1])
    for name in ("prob", "logprob", "logit-diff", "accuracy"):
        metric = metric_fn(name)
        torch.testing.assert_close(metric(scored, view), metric(full, batch), rtol=0, atol=1e-6, msg=name)


def test_prob_diff_on_digit_years_and_gradients_from_embeddings(tmp_path):
    """prob-diff's branches index answer positions, not sequence positions: they read the same values; and
    the gradient through ``inputs_embeds`` (attribution's pass) is the full logits' gradient."""
    model, tokenizer = load_model(write_model(tmp_path / "m"), device="cpu")
    task = resolve_task("hf-greater-than", n=6, tokenizer=tokenizer)
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    assert batch.branch_index is not None and batch.target_pos.shape[1] > 1
    metric = metric_fn("prob-diff")
    embeds = model.get_input_embeddings()(batch.clean).detach()
    results = []
    for scored in (False, True):
        x = embeds.clone().requires_grad_(True)
        if scored:
            value = metric(*scored_logits(model, batch, embeds=x))
        else:
            mask = None if bool(batch.attention_mask.all()) else batch.attention_mask
            value = metric(model(inputs_embeds=x, attention_mask=mask).logits, batch)
        (grad,) = torch.autograd.grad(value.sum(), x)
        results.append((value.detach(), grad))
    (want, want_grad), (got, got_grad) = results
    torch.testing.assert_close(got, want, rtol=0, atol=1e-7)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-5, atol=1e-8)
    assert set(METRICS) >= {"prob", "logprob", "logit-diff", "accuracy", "prob-diff"}


def test_a_model_that_projects_every_position_gives_the_same(word_setup):
    task, tokenizer = word_setup
    model = make_model("qwen2", tokenizer, device="cpu")
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    forward = model.forward
    model.forward = lambda *a, logits_to_keep=None, **k: forward(*a, **k)  # ignores logits_to_keep
    try:
        with torch.no_grad():
            scored, view = scored_logits(model, batch, ids=batch.clean, repeat=2)
    finally:
        del model.forward
    with torch.no_grad():
        full = run_logits(model, batch.clean, batch, repeat=2)
    assert scored.shape[1] == batch.target_pos.shape[1] + 1
    torch.testing.assert_close(metric_fn("prob")(scored, view), metric_fn("prob")(full, batch), rtol=0, atol=0)


def test_a_heads_only_pass_records_the_full_passes_heads(word_setup):
    task, tokenizer = word_setup
    model = make_model("llama", tokenizer, device="cpu")
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    with torch.no_grad(), record_heads(model) as full:
        run_logits(model, batch.corrupt, batch)
    with torch.no_grad(), record_heads(model) as heads_only:
        run_heads_only(model, batch.corrupt, batch)
    assert sorted(full) == sorted(heads_only) == list(range(3))
    for layer in full:
        torch.testing.assert_close(heads_only[layer], full[layer], rtol=0, atol=0)


def test_a_model_whose_forward_takes_no_logits_to_keep_gives_the_same(word_setup):
    task, tokenizer = word_setup
    inner = make_model("qwen2", tokenizer, device="cpu")

    class Strict(torch.nn.Module):  # a forward with no logits_to_keep and no **kwargs
        def forward(self, input_ids, attention_mask=None, use_cache=False):
            return inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)

    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    with torch.no_grad():
        scored, view = scored_logits(Strict(), batch, ids=batch.clean)
        full = run_logits(inner, batch.clean, batch)
        run_heads_only(Strict(), batch.clean, batch)  # does not raise
    torch.testing.assert_close(metric_fn("logprob")(scored, view), metric_fn("logprob")(full, batch), rtol=0, atol=0)

"""CMAP identities: a model against itself, a perturbation planted in one head, incompatible models."""

from __future__ import annotations

import copy

import pytest
import torch

from circuitdrift.circuits.crossmodel import cross_model_patch
from circuitdrift.errors import IncompatibleModelsError
from circuitdrift.models.heads import HeadLayout
from circuitdrift.models.wordlevel import build_word_tokenizer
from tests.conftest import WORDS, exact_atol, make_model


@pytest.mark.parametrize("method", ["exact", "attribution"])
def test_model_against_itself_is_zero(word_tokenizer, toy_task, method, device):
    model = make_model("qwen2", word_tokenizer)
    twin = copy.deepcopy(model)
    delta = cross_model_patch(model, twin, word_tokenizer, toy_task, method=method)
    assert delta.shape == (3, 4)
    assert delta.scores.abs().max() <= exact_atol(device)


def plant(model, layer: int, head: int, scale: float = 3.0):
    """Perturb only query head ``head`` of ``layer``: rows of q_proj that feed that head alone."""
    attn = HeadLayout.of(model).layers[layer].self_attn
    d = HeadLayout.of(model).head_dim
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        rows = attn.q_proj.weight[head * d:(head + 1) * d]
        rows += scale * torch.randn(rows.shape, generator=generator).to(rows.device)
    return model


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_planted_perturbation_is_found_there_and_nowhere_upstream(word_tokenizer, toy_task, family, device):
    base = make_model(family, word_tokenizer, n_layers=3, n_heads=4, n_kv_heads=2)
    tuned = plant(copy.deepcopy(base), layer=1, head=2)
    delta = cross_model_patch(base, tuned, word_tokenizer, toy_task, method="exact").scores
    # a random-init model spreads P over the vocabulary (~1e-2), so effects are small in P units
    assert delta[1, 2].abs() > 1e-6
    assert delta.abs().argmax().item() == 1 * 4 + 2  # the planted head has the largest effect
    upstream_and_siblings = torch.cat([delta[0], delta[1, [0, 1, 3]]])
    assert upstream_and_siblings.abs().max() <= exact_atol(device)  # identical outputs: patching them is a no-op
    approx = cross_model_patch(base, tuned, word_tokenizer, toy_task, method="attribution").scores
    assert approx.abs().argmax().item() == 1 * 4 + 2
    assert torch.cat([approx[0], approx[1, [0, 1, 3]]]).abs().max() <= exact_atol(device)


def test_reverse_direction_patches_base_into_finetuned(word_tokenizer, toy_task, device):
    base = make_model("qwen2", word_tokenizer)
    tuned = plant(copy.deepcopy(base), layer=2, head=0)
    forward = cross_model_patch(base, tuned, word_tokenizer, toy_task, method="exact")
    backward = cross_model_patch(base, tuned, word_tokenizer, toy_task, method="exact", reverse=True)
    assert backward.meta["direction"] == "base-into-finetuned"
    assert backward.scores[2, 0].abs() > 1e-6 and forward.scores[2, 0].abs() > 1e-6
    assert backward.scores[:2].abs().max() <= exact_atol(device)


@pytest.mark.parametrize("method", ["exact", "attribution"])
def test_a_donor_in_another_dtype_on_another_device_hands_its_heads_to_the_receivers(
        word_tokenizer, toy_task, device, method, monkeypatch):
    """The donor runs on its own device (CPU here) and dtype (float64); what it hands the receiver (on --device,
    float32) lands on the receiver's device and dtype, and the scores are the same-dtype run's to rounding."""
    import circuitdrift.circuits.attribution as attribution
    import circuitdrift.circuits.patching as patching
    from circuitdrift.circuits.forward import model_device, moved_like

    base = make_model("qwen2", word_tokenizer)
    tuned = plant(copy.deepcopy(base), layer=1, head=2)
    same = cross_model_patch(base, tuned, word_tokenizer, toy_task, method=method).scores
    donor = copy.deepcopy(tuned).to("cpu", torch.float64)
    handed, donor_inputs = [], []

    def spy(tensor, like):
        out = moved_like(tensor, like)
        handed.append((out.device, out.dtype, like.device, like.dtype))
        return out

    monkeypatch.setattr(patching, "moved_like", spy)
    monkeypatch.setattr(attribution, "moved_like", spy)
    hook = donor.register_forward_pre_hook(lambda _m, args, kwargs: donor_inputs.append(kwargs["input_ids"].device),
                                           with_kwargs=True)
    try:
        mixed = cross_model_patch(base, donor, word_tokenizer, toy_task, method=method).scores
    finally:
        hook.remove()
    assert handed and all(out[:2] == out[2:] for out in handed)
    assert {out[2] for out in handed} == {model_device(base)}
    assert donor_inputs and set(donor_inputs) == {torch.device("cpu")}
    torch.testing.assert_close(mixed, same, rtol=1e-4, atol=1e-8)


def test_different_layouts_are_refused(word_tokenizer, toy_task):
    base = make_model("qwen2", word_tokenizer, n_layers=3)
    other = make_model("qwen2", word_tokenizer, n_layers=2)
    with pytest.raises(IncompatibleModelsError, match="n_layers: base has 3, fine-tuned has 2"):
        cross_model_patch(base, other, word_tokenizer, toy_task)
    wider = make_model("qwen2", word_tokenizer, n_heads=8, hidden=64)
    with pytest.raises(IncompatibleModelsError, match="n_heads"):
        cross_model_patch(base, wider, word_tokenizer, toy_task)


def test_different_vocabularies_are_refused(word_tokenizer, toy_task):
    base = make_model("qwen2", word_tokenizer)
    other_tok = build_word_tokenizer(WORDS + ["extra"])
    with pytest.raises(IncompatibleModelsError, match="tokenizers differ"):
        cross_model_patch(base, copy.deepcopy(base), word_tokenizer, toy_task, finetuned_tokenizer=other_tok)

"""The controls' identities: the random direction, and directional ablation on a random-init model."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.errors import InputError
from circuitdrift.steer.controls import ablation, project_out, random_direction
from circuitdrift.steer.steering import steering
from tests.conftest import make_model


def test_random_direction_is_orthogonal_norm_matched_and_reproducible():
    r = torch.randn(64, generator=torch.Generator().manual_seed(1)) * 3
    v = random_direction(r, seed=7)
    assert abs(float(v.double() @ r.double())) / float(r.norm()) ** 2 < 1e-6
    assert float(v.norm()) == pytest.approx(float(r.norm()), rel=1e-6)
    assert torch.equal(v, random_direction(r, seed=7))
    assert not torch.allclose(v, random_direction(r, seed=8))
    with pytest.raises(InputError, match="norm 0"):
        random_direction(torch.zeros(4), seed=0)


def test_project_out_removes_exactly_the_component():
    h = torch.randn(2, 3, 8)
    r = torch.randn(8)
    out = project_out(h, r)
    assert (out @ (r / r.norm())).abs().max() < 1e-5
    torch.testing.assert_close(project_out(out, r), out)


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def _without_dimension(model, j: int):
    """Make residual dimension j unused: nothing writes it (embedding, attention and MLP outputs)."""
    inner = model.model
    with torch.no_grad():
        inner.embed_tokens.weight[:, j] = 0
        for block in inner.layers:
            block.self_attn.o_proj.weight[j, :] = 0
            block.mlp.down_proj.weight[j, :] = 0
    return model


def test_ablating_a_direction_the_model_does_not_use_changes_nothing(word_tokenizer):
    model = _without_dimension(make_model("qwen2", word_tokenizer, device="cpu"), j=5)
    hidden = model.config.hidden_size
    unused = torch.zeros(hidden)
    unused[5] = 2.0
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    before = _logits(model, ids)
    with ablation(model, unused, range(model.config.num_hidden_layers)):
        after = _logits(model, ids)
    assert torch.equal(before, after)
    used = torch.zeros(hidden)
    used[6] = 1.0
    with ablation(model, used, [0]):
        assert not torch.allclose(before, _logits(model, ids), atol=1e-4)  # a used direction does matter
    assert torch.equal(before, _logits(model, ids))  # the hooks are gone


@pytest.mark.parametrize("scale", ["relative", "absolute"])
def test_ablating_r_removes_the_steering_along_r(word_tokenizer, scale):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    r = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    layers = [0, 1]
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with ablation(model, r, layers):
        plain = _logits(model, ids)
    with steering(model, r, layers, 0.8 if scale == "relative" else 3.0, scale):
        steered = _logits(model, ids)
        with ablation(model, r, layers):  # registered after the steering hook: runs after it
            steered_ablated = _logits(model, ids)
    assert not torch.allclose(steered, plain, atol=1e-3)
    torch.testing.assert_close(steered_ablated, plain, rtol=0, atol=1e-4)


def test_ablation_rejects_bad_layers(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    with pytest.raises(InputError, match="ablation layer 9"), ablation(model, torch.ones(32), [9]):
        pass

"""The last layer's MLP only at read positions (models/unread.py) against the model's own forward.

On every tiny family: the read positions' hidden states, the key/value cache and the gradients of a loss on
the read positions are the plain forward's; the MLP sees only the read rows; the patch is gone afterwards.
"""

import pytest
import torch

from circuitdrift.models.prefix import forward_with_shared_prefix, output_cache
from circuitdrift.models.tiny import TINY_FAMILIES
from circuitdrift.models.unread import last_layer_mlp, reading_only
from tests.conftest import make_model


def _batch(rows=5, width=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 128, (rows, width), generator=gen)
    ids[:, :3] = ids[0, :3]  # a shared start, as a chat template gives
    mask = torch.ones_like(ids)
    mask[1, 7:] = mask[3, 5:] = 0  # right padding
    read = torch.rand(rows, width, generator=gen) < 0.3
    read[0, -1] = True
    read[2] = False
    return ids, mask, read


def _grads(model, value):
    model.zero_grad()
    weights = torch.randn(value.shape, generator=torch.Generator().manual_seed(1))
    (value * weights).sum().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_read_positions_keys_values_and_gradients_are_the_plain_forwards(family):
    model = make_model(family, n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, device="cpu")  # eval: no dropout
    backbone = getattr(model, model.base_model_prefix)
    ids, mask, read = _batch()
    plain = backbone(input_ids=ids, attention_mask=mask, use_cache=True)
    reference_grads = _grads(model, plain.last_hidden_state[read])
    mlp = last_layer_mlp(backbone)
    assert mlp is not None
    rows_seen = []
    handle = mlp.register_forward_pre_hook(lambda m, args: rows_seen.append(args[0].shape[:-1]))
    try:
        with reading_only(backbone, read):
            out = backbone(input_ids=ids, attention_mask=mask, use_cache=True)
    finally:
        handle.remove()
    assert "forward" not in vars(mlp)  # restored
    assert [tuple(s) for s in rows_seen] == [(5, 9)]  # the module is called once, its arithmetic on read rows
    torch.testing.assert_close(out.last_hidden_state[read], plain.last_hidden_state[read], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out.last_hidden_state[~read], plain.last_hidden_state[~read])  # really skipped
    for got, want in zip(output_cache(out).layers, output_cache(plain).layers, strict=True):
        torch.testing.assert_close(got.keys, want.keys, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.values, want.values, rtol=1e-5, atol=1e-6)
    grads = _grads(model, out.last_hidden_state[read])
    assert grads.keys() == reference_grads.keys()
    for name, grad in reference_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_mlps_arithmetic_runs_on_the_read_rows_only():
    model = make_model("qwen2", n_layers=2, device="cpu")
    backbone = model.model
    ids, mask, read = _batch()
    seen = []
    handle = backbone.layers[-1].mlp.down_proj.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    try:
        with torch.no_grad(), reading_only(backbone, read):
            backbone(input_ids=ids, attention_mask=mask)
        with torch.no_grad(), reading_only(backbone, torch.zeros_like(read)):
            backbone(input_ids=ids, attention_mask=mask)
        with torch.no_grad(), reading_only(backbone, read[:, :4]):  # another call's shape: plain
            backbone(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    assert [s[0] for s in seen] == [int(read.sum()), 0, 5]  # no rows when nothing is read
    assert seen[2][:2] == (5, 9)


def test_shared_prefix_forward_reads_only_what_it_is_told():
    model = make_model("qwen2", n_layers=2, device="cpu")
    ids, mask, read = _batch()
    positions = torch.arange(ids.size(1)).expand_as(ids)
    plain, plain_cache = forward_with_shared_prefix(model.model, input_ids=ids, attention_mask=mask,
                                                    position_ids=positions)
    hidden, cache = forward_with_shared_prefix(model.model, input_ids=ids, attention_mask=mask,
                                               position_ids=positions, read=read)
    torch.testing.assert_close(hidden[read], plain[read], rtol=1e-5, atol=1e-6)
    for got, want in zip(cache.layers, plain_cache.layers, strict=True):
        torch.testing.assert_close(got.values, want.values, rtol=1e-5, atol=1e-6)


def test_models_that_route_tokens_to_experts_keep_their_mlp():
    model = make_model("qwen2", n_layers=2, device="cpu")
    assert last_layer_mlp(model.model) is model.model.layers[-1].mlp
    model.config.num_experts = 4
    assert last_layer_mlp(model.model) is None


def test_under_autocast_the_read_positions_are_the_plain_forwards():
    model = make_model("qwen2", n_layers=2, device="cpu")
    ids, mask, read = _batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        with reading_only(model.model, read):
            out = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.dtype == plain.dtype
    torch.testing.assert_close(out[read], plain[read])

"""HeadLayout per family, hook hygiene, and the per-head decomposition identity."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, head_hooks, record_heads
from circuitdrift.models.tiny import TINY_FAMILIES, tiny_model


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_layout_matches_config(family):
    model = tiny_model(family, n_layers=2, hidden=32, n_heads=4, n_kv_heads=2)
    layout = HeadLayout.of(model)
    assert layout.family == family
    assert (layout.n_layers, layout.n_heads, layout.head_dim) == (2, 4, 8)
    expected_kv = 4 if family in ("gpt2", "gpt_neox") else 2
    assert layout.n_kv_heads == expected_kv
    assert layout.kv_group(3) == 3 // (4 // expected_kv)


def test_head_dim_read_from_config_when_it_differs():
    model = tiny_model("qwen3", n_layers=1, hidden=32, n_heads=4, n_kv_heads=2, head_dim=16)
    layout = HeadLayout.of(model)
    assert layout.head_dim == 16
    with record_heads(model) as heads:
        model(torch.randint(0, 128, (1, 5)))
    assert heads[0].shape == (1, 5, 4, 16)


def test_unsupported_architecture_names_supported_families():
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("opt", vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, ffn_dim=32, word_embed_proj_dim=16)
    model = AutoModelForCausalLM.from_config(config)
    with pytest.raises(InputError, match=r"'opt' is not supported .*qwen2"):
        HeadLayout.of(model)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_per_head_writes_sum_to_attention_output(family):
    """sum_h z_h W_O,h + b equals the output projection's output, for every family."""
    model = tiny_model(family, n_layers=2, hidden=32, n_heads=4, n_kv_heads=2)
    layout = HeadLayout.of(model)
    outputs = {}
    handles = [proj.register_forward_hook(lambda m, a, o, i=i: outputs.__setitem__(i, o))
               for i, proj in enumerate(layout.out_projs)]
    try:
        with record_heads(model) as heads:
            model(torch.randint(0, 128, (2, 6)))
    finally:
        for h in handles:
            h.remove()
    for layer in range(layout.n_layers):
        writes = layout.head_writes(layer, heads[layer]).sum(dim=2)
        bias = layout.out_bias(layer)
        if bias is not None:
            writes = writes + bias
        torch.testing.assert_close(writes, outputs[layer], atol=1e-5, rtol=1e-5)


def test_hooks_removed_even_when_forward_raises():
    model = tiny_model("qwen2")
    layout = HeadLayout.of(model)

    def boom(layer, z):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with head_hooks(model, boom):
            model(torch.randint(0, 128, (1, 4)))
    assert all(not proj._forward_pre_hooks for proj in layout.out_projs)


def test_identity_hook_changes_nothing():
    model = tiny_model("llama")
    ids = torch.randint(0, 128, (2, 7))
    with torch.no_grad():
        plain = model(ids).logits
        with head_hooks(model, lambda layer, z: z.clone()):
            hooked = model(ids).logits
    assert torch.equal(plain, hooked)


def test_peft_wrapped_model_resolves_and_records():
    from peft import LoraConfig, get_peft_model

    model = tiny_model("qwen2")
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "o_proj"]))
    layout = HeadLayout.of(wrapped)
    assert layout.n_layers == 2 and layout.n_heads == 4
    with record_heads(wrapped) as heads:
        wrapped(input_ids=torch.randint(0, 128, (1, 4)))
    assert heads[1].shape == (1, 4, 4, 8)

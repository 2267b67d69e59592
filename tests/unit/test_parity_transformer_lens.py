"""Per-head outputs agree with TransformerLens's TransformerBridge ``hook_z`` on a Qwen2 (GQA) config."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.models.heads import record_heads
from circuitdrift.models.load import load_model
from tests.conftest import make_model

pytest.importorskip("transformer_lens")


def test_record_heads_matches_transformer_bridge_hook_z(tmp_path, word_tokenizer):
    from transformer_lens.model_bridge import TransformerBridge

    model = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2)
    model.save_pretrained(tmp_path / "m")
    word_tokenizer.save_pretrained(tmp_path / "m")
    ours, _ = load_model(str(tmp_path / "m"), device="cpu", attn_implementation="eager")
    bridge = TransformerBridge.boot_transformers(str(tmp_path / "m"), device="cpu", tokenizer=word_tokenizer)
    ids = torch.tensor([word_tokenizer("w1 w2 w3 w4 w5 w6").input_ids])
    with torch.no_grad(), record_heads(ours) as heads:
        logits = ours(ids).logits
    _, cache = bridge.run_with_cache(ids)
    for layer in range(2):
        theirs = cache[f"blocks.{layer}.attn.hook_z"]
        theirs = theirs.reshape(heads[layer].shape)  # [b, s, H, d] either way
        torch.testing.assert_close(heads[layer], theirs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, bridge(ids), atol=1e-4, rtol=1e-4)

"""Random-init tiny models of every supported family, built from configs (no download).

Tests and benchmarks use them; they are also handy for smoke-testing a
pipeline before pointing it at a real checkpoint.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

TINY_FAMILIES = ("qwen2", "qwen3", "llama", "mistral", "gpt2", "gpt_neox")


def tiny_config(
    family: str = "qwen2",
    *,
    vocab_size: int = 128,
    n_layers: int = 2,
    hidden: int = 32,
    n_heads: int = 4,
    n_kv_heads: int | None = 2,
    head_dim: int | None = None,
    max_positions: int = 256,
    attn_implementation: str = "sdpa",
):
    """A config for a small model; ``n_kv_heads < n_heads`` gives grouped-query attention where supported."""
    if family == "gpt2":
        kwargs = dict(n_layer=n_layers, n_embd=hidden, n_head=n_heads, n_positions=max_positions,
                      bos_token_id=0, eos_token_id=0)
    elif family == "gpt_neox":
        kwargs = dict(
            num_hidden_layers=n_layers,
            hidden_size=hidden,
            num_attention_heads=n_heads,
            intermediate_size=hidden * 4,
            max_position_embeddings=max_positions,
            bos_token_id=0,
            eos_token_id=0,
        )
    else:
        kwargs = dict(
            num_hidden_layers=n_layers,
            hidden_size=hidden,
            num_attention_heads=n_heads,
            num_key_value_heads=n_kv_heads or n_heads,
            intermediate_size=hidden * 2,
            max_position_embeddings=max_positions,
        )
        if head_dim is not None or family == "qwen3":
            kwargs["head_dim"] = head_dim or hidden // n_heads
    config = AutoConfig.for_model(family, vocab_size=vocab_size, **kwargs)
    config._attn_implementation = attn_implementation
    return config


def tiny_model(family: str = "qwen2", seed: int = 0, **config_kwargs) -> PreTrainedModel:
    """Random-init model in eval mode, float32, CPU; the same seed gives the same weights."""
    config = tiny_config(family, **config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=config._attn_implementation)
    return model.float().eval()

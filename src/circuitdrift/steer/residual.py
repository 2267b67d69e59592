"""The residual stream after each decoder block: read it, or change it, through forward hooks.

A block's output is the residual stream the next block reads, so "layer l" here
means the output of block l (``hidden_states[l + 1]`` in transformers' terms),
read directly from the block so that no final norm is mixed in. Hooks are
removed in ``finally``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.models.generate import left_pad
from circuitdrift.models.heads import HeadLayout

# fn(layer, h) -> replacement for h, or None to leave it; h is [batch, seq, hidden]
ResidualFn = Callable[[int, Tensor], "Tensor | None"]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks, in order (any family :class:`HeadLayout` supports, PEFT-wrapped or not)."""
    return HeadLayout.of(model).layers


@contextmanager
def residual_hooks(model: nn.Module, fn: ResidualFn, layers: Iterable[int]) -> Iterator[None]:
    """Call ``fn(layer, h)`` on the output of each chosen block; a returned tensor replaces it."""
    blocks = decoder_layers(model)
    handles = []
    try:
        for layer in layers:

            def hook(module, args, output, layer=layer):
                h = output[0] if isinstance(output, tuple) else output  # [b, s, hidden]
                new = fn(layer, h)
                if new is None:
                    return None
                new = new.to(h.dtype)
                return (new, *output[1:]) if isinstance(output, tuple) else new

            handles.append(blocks[layer].register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def last_token_residuals(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    batch_size: int = 32,
) -> Tensor:
    """Residual stream at the last prompt token after every block: [n_layers, n_prompts, hidden] (float32).

    Prompts are full strings (a chat template already applied) and are tokenised
    without special tokens added; left padding puts every last token at position -1.
    """
    blocks = decoder_layers(model)
    device = next(model.parameters()).device
    out: list[list[Tensor]] = [[] for _ in blocks]

    def keep(layer: int, h: Tensor) -> None:
        out[layer].append(h[:, -1, :].float().cpu())
        return None

    was_training = model.training
    model.eval()
    try:
        with residual_hooks(model, keep, range(len(blocks))):
            for start in range(0, len(prompts), batch_size):
                rows = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts[start : start + batch_size]]
                ids, mask = left_pad(rows, tokenizer.pad_token_id, device)
                model(input_ids=ids, attention_mask=mask, use_cache=False)
    finally:
        model.train(was_training)
    return torch.stack([torch.cat(chunks) for chunks in out])  # [L, N, hidden]

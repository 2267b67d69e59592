"""The arithmetic TRL repeats on a CPU, done once: the prompt's shared prefix and the unscored positions.

At the demo's recipe (51-token chat prompts, 3-4 scored tokens) the model's arithmetic is most of a training
step, not overhead (docs/benchmarks.md), and TRL spends much of it on work whose result it already has:

* Every chat prompt starts with the same tokens (the system turn and the user header, 14 tokens of the
  organism's ~51). :func:`forward_with_shared_prefix` runs those leading columns once, as one row, and
  gathers their keys and values to every row, still on the autograd graph; :func:`shared_prefix_backbone`
  does it inside TRL's own SFT forward. GRPO's left-padded prompts are first laid out as
  ``[shared prefix][padding][rest]`` (:func:`prefix_first`), numbering positions by the real tokens as
  ``generate`` does, so that the prefix sits in the same columns of every row.
* On a device without Triton TRL's fused LM head projects every position onto the vocabulary, although only
  the completion's positions are scored (on CUDA it projects only those): :func:`compact_lm_head`.

Same mathematics: rotary attention depends on positions only through their differences and padding is
masked, so each real token sees the keys and values it sees in TRL's forward; the scores agree up to float
rounding of the reordered sums (tests/unit/test_shared_prefix.py).
"""

from __future__ import annotations

import contextlib
import inspect

import torch
import trl.trainer.utils as trl_utils
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.modeling_outputs import BaseModelOutputWithPast

# TRL's fused forward scales the logits by these config fields when a model has them; the shared-prefix path
# covers only models without them and leaves the rest to TRL's own forward.
_LOGIT_FIELDS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                 "logits_scaling")


def supports_shared_prefix(model: PreTrainedModel) -> bool:
    """True for a plain decoder whose logits are ``hidden @ lm_head.T`` (no scaling, soft-capping or bias),
    without dropout, and whose every layer keeps a full key/value cache (no sliding window)."""
    config = model.config.get_text_config()
    head = model.get_output_embeddings()
    return (
        config is model.config
        and not getattr(config, "is_encoder_decoder", False)
        and head is not None
        and getattr(head, "bias", None) is None
        and all(getattr(config, field, None) is None for field in _LOGIT_FIELDS)
        and hasattr(model, model.base_model_prefix)
        and not _has_dropout(model)  # with dropout, rows sharing a prefix would share one dropout mask
        and all(type(layer) is DynamicLayer for layer in DynamicCache(config=config).layers)
    )


def _has_dropout(model: PreTrainedModel) -> bool:
    config = model.config.get_text_config()
    rates = [getattr(config, f, 0.0) or 0.0 for f in ("attention_dropout", "hidden_dropout", "dropout")]
    return any(r > 0 for r in rates) or any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


def common_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         position_ids: torch.Tensor | None = None) -> int:
    """How many leading columns every row shares: the same token, unmasked, at the same position."""
    same = (input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)
    if position_ids is not None:
        same &= (position_ids == position_ids[:1]).all(0)
    return int(same.int().cumprod(0).sum())


def prefix_first(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Left-padded rows laid out as ``[shared prefix][padding][rest]``, with positions counting real tokens.

    Returns ``(input_ids, attention_mask, position_ids)`` of the same shape. Each row's real tokens keep their
    order and their ``generate`` positions (0 for the first real token); the prefix the rows' real tokens
    share moves to the leading columns. Rows that are not left-padded are returned as they are, numbered so.
    """
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if (mask.diff(dim=1) < 0).any():  # not left-padded: nothing to move
        return input_ids, attention_mask, positions
    width = input_ids.size(1)
    pads = width - mask.sum(1, keepdim=True)  # [rows, 1]
    columns = torch.arange(width, device=input_ids.device).unsqueeze(0)
    aligned = input_ids.gather(1, (pads + columns).clamp(max=width - 1))  # real tokens moved to the left
    shared = ((aligned == aligned[:1]) & (columns < width - pads.max())).all(0)
    k = int(shared.int().cumprod(0).sum())
    if k == 0:
        return input_ids, attention_mask, positions
    # column j reads: the prefix (j < k) from pads + j, the padding (k <= j < k + pads) from j - k, the rest as is
    source = torch.where(columns < k, pads + columns, torch.where(columns < k + pads, columns - k, columns))
    moved_mask = attention_mask.gather(1, source)
    return input_ids.gather(1, source), moved_mask, (moved_mask.long().cumsum(-1) - 1).clamp(min=0)


def forward_with_shared_prefix(backbone, *, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                               position_ids: torch.Tensor) -> tuple[torch.Tensor, DynamicCache]:
    """The backbone's last hidden states ``[rows, columns, hidden]`` and its key/value cache, with the leading
    columns every row shares (:func:`common_prefix_length`) run once, as one row, and gathered to every row."""
    rows, width = input_ids.shape
    k = min(common_prefix_length(input_ids, attention_mask, position_ids), width - 1)
    if k < 1 or rows == 1:
        out = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
        return out.last_hidden_state, output_cache(out)
    prefix = backbone(input_ids=input_ids[:1, :k], attention_mask=attention_mask[:1, :k],
                      position_ids=position_ids[:1, :k], use_cache=True)
    cache = output_cache(prefix)
    cache.reorder_cache(torch.zeros(rows, dtype=torch.long, device=input_ids.device))  # on the graph
    rest = backbone(input_ids=input_ids[:, k:], attention_mask=attention_mask, position_ids=position_ids[:, k:],
                    use_cache=True, **cache_kwarg(backbone, cache))
    hidden = torch.cat([prefix.last_hidden_state.expand(rows, -1, -1), rest.last_hidden_state], dim=1)
    return hidden, output_cache(rest)


@contextlib.contextmanager
def shared_prefix_backbone(model: PreTrainedModel):
    """Within: the model's backbone runs the prefix its rows share once (TRL's SFT forward calls it with
    right-padded rows that all start with the chat template's system turn). Restored in ``finally``."""
    backbone = getattr(model, model.base_model_prefix)
    original = backbone.forward
    patched_before = "forward" in vars(backbone)

    def forward(*args, input_ids=None, attention_mask=None, position_ids=None, use_cache=None, **kwargs):
        if args or kwargs or input_ids is None or attention_mask is None or not torch.is_grad_enabled():
            return original(*args, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=use_cache, **kwargs)
        if position_ids is None:
            position_ids = torch.arange(input_ids.size(1), device=input_ids.device).expand_as(input_ids)
        hidden, _ = forward_with_shared_prefix(original, input_ids=input_ids, attention_mask=attention_mask,
                                               position_ids=position_ids)
        return BaseModelOutputWithPast(last_hidden_state=hidden)

    backbone.forward = forward
    try:
        yield
    finally:
        if patched_before:
            backbone.forward = original
        else:
            del backbone.forward  # the class's method shows through again


def output_cache(output) -> DynamicCache:
    """The key/value cache of a model output (``cache`` from transformers 5.x, ``past_key_values`` before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def cache_kwarg(backbone, cache) -> dict:
    """``{"cache": cache}`` or ``{"past_key_values": cache}``, as the backbone (a module or its forward) names it."""
    forward = backbone.forward if isinstance(backbone, torch.nn.Module) else backbone
    name = "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
    return {name: cache}


def gathered_cache(cache: DynamicCache, rows: torch.Tensor, *, config, detach: bool = False,
                   columns: int | None = None) -> DynamicCache:
    """A new cache holding ``rows`` of ``cache`` (first ``columns`` columns), on the graph unless ``detach``;
    ``cache`` itself is left as it is, so one prompt pass can feed several consumers."""
    fresh = DynamicCache(config=config)
    for layer_idx, layer in enumerate(cache.layers):
        keys, values = layer.keys[rows, :, :columns], layer.values[rows, :, :columns]
        if detach:
            keys, values = keys.detach(), values.detach()
        fresh.update(keys, values, layer_idx)
    return fresh


@contextlib.contextmanager
def compact_lm_head():
    """Within: TRL's fused LM head scores only labelled positions on every device (its CUDA path)."""
    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: True  # read by the fused forward only, to choose compact scoring
    try:
        yield
    finally:
        trl_utils._use_triton = original

"""A batch's shared prompt start, run once: the prefix-first layout, the shared-prefix forward, and generation on it.

Chat prompts all start with the same tokens (the template's system turn and user header: 14 of the organism's
~51), and a GRPO batch repeats each prompt G times. :func:`forward_with_shared_prefix` runs the leading columns
every row shares once, as one row, and gathers their keys and values to every row (on the autograd graph when
there is one). Left-padded prompts are first laid out as ``[shared prefix][padding][rest]``
(:func:`prefix_first`) with positions counting real tokens, ``generate``'s own numbering, so that the prefix
sits in the same columns of every row. :func:`generate_sharing_prefix` is ``generate`` starting from such a
pass. Same mathematics: padding is masked and positions are the ones ``generate`` uses, so each real token sees
the keys and values it sees in a plain forward; results agree up to float rounding of reordered sums
(tests/unit/test_shared_prefix.py). Models whose layers keep anything but a full key/value cache (a sliding
window), whose backbone takes no position ids, or that carry hooks (steering, head patching) are left to the
plain path (:func:`shares_prefix`).
"""

from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache, DynamicLayer

from circuitdrift.models.unread import reading_only


def shares_prefix(model: PreTrainedModel) -> bool:
    """Whether :func:`forward_with_shared_prefix` computes exactly what the model's own forward does now: a
    model of a kind it runs (:func:`prefix_shareable`) that carries no hooks at the moment (:func:`unhooked`)."""
    return unhooked(model) and prefix_shareable(model)


def prefix_shareable(model: PreTrainedModel) -> bool:
    """The model's kind, fixed for its life: a decoder with a backbone that takes position ids and a full
    key/value cache in every layer (hooks come and go, so they are :func:`unhooked`'s, checked per call)."""
    config = model.config
    backbone = getattr(model, model.base_model_prefix, None)
    return (
        not getattr(config, "is_encoder_decoder", False)
        and config.get_text_config() is config
        and isinstance(backbone, torch.nn.Module)
        and "position_ids" in inspect.signature(backbone.forward).parameters
        and all(type(layer) is DynamicLayer for layer in DynamicCache(config=config).layers)
    )


def unhooked(model: torch.nn.Module) -> bool:
    """No forward hooks on the model or any module in it, none global, no Accelerate hook: a hook sees each
    forward call, and a shared-prefix pass makes two calls of other shapes (and skips the model's own
    forward) where the hook expects one (steering that spares each row's first token reads the model's
    attention mask, for one)."""
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks or hasattr(m, "_hf_hook") for m in model.modules())


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


def forward_with_shared_prefix(backbone: torch.nn.Module, *, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                               position_ids: torch.Tensor, read: torch.Tensor | None = None,
                               forward=None) -> tuple[torch.Tensor, DynamicCache]:
    """The backbone's last hidden states ``[rows, columns, hidden]`` and its key/value cache, with the leading
    columns every row shares (:func:`common_prefix_length`) run once, as one row, and gathered to every row.

    ``read`` (``[rows, columns]`` bool): the positions whose hidden state the caller reads; the last layer's MLP
    runs only there (:func:`~circuitdrift.models.unread.reading_only`), so the others are not the model's.
    None: every position is read. ``forward``: the backbone's forward to call (default: the module's own).
    """
    module, backbone = backbone, forward or backbone
    rows, width = input_ids.shape
    k = min(common_prefix_length(input_ids, attention_mask, position_ids), width - 1)
    if k < 1 or rows == 1:
        with reading_only(module, read):
            out = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=True)
        return out.last_hidden_state, output_cache(out)
    with reading_only(module, None if read is None else read[:, :k].any(0, keepdim=True)):
        prefix = backbone(input_ids=input_ids[:1, :k], attention_mask=attention_mask[:1, :k],
                          position_ids=position_ids[:1, :k], use_cache=True)
    cache = output_cache(prefix)
    cache.reorder_cache(torch.zeros(rows, dtype=torch.long, device=input_ids.device))  # on the graph
    with reading_only(module, None if read is None else read[:, k:]):
        rest = backbone(input_ids=input_ids[:, k:], attention_mask=attention_mask, position_ids=position_ids[:, k:],
                        use_cache=True, **cache_kwarg(backbone, cache))
    hidden = torch.cat([prefix.last_hidden_state.expand(rows, -1, -1), rest.last_hidden_state], dim=1)
    return hidden, output_cache(rest)


@torch.no_grad()
def generate_sharing_prefix(model: PreTrainedModel, *, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                            **kwargs):
    """``model.generate`` on left-padded prompts, with all but each row's last prompt token run first by
    :func:`forward_with_shared_prefix` (each distinct row once, their shared start once). Returns what
    ``generate`` returns, the rows' own prompt tokens in front."""
    if input_ids.size(1) < 2 or not shares_prefix(model):
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    distinct, copy_of = distinct_rows(input_ids, attention_mask)
    ids, mask, positions = prefix_first(distinct[:, :input_ids.size(1)], distinct[:, input_ids.size(1):])
    _, cache = forward_with_shared_prefix(getattr(model, model.base_model_prefix), input_ids=ids[:, :-1],
                                          attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
                                          read=torch.zeros_like(mask[:, :-1], dtype=torch.bool))  # the cache only
    cache = gathered_cache(cache, copy_of, config=model.config)
    return generate_from_cache(model.generate, model=model, prompt_ids=input_ids, input_ids=ids[copy_of],
                               attention_mask=mask[copy_of], cache=cache, **kwargs)


def generate_from_cache(generate, *, model: PreTrainedModel, prompt_ids: torch.Tensor, input_ids: torch.Tensor,
                        attention_mask: torch.Tensor, cache: DynamicCache, **kwargs):
    """``generate`` (``model``'s, or the original of a patched one) continuing from ``cache`` (all but the last
    column of ``input_ids``, laid out prefix first), its output's prompt columns put back to ``prompt_ids``."""
    out = generate(input_ids=input_ids, attention_mask=attention_mask, **cache_kwarg(model, cache), **kwargs)
    sequences = out if isinstance(out, torch.Tensor) else out.sequences
    restored = torch.cat([prompt_ids, sequences[:, prompt_ids.size(1):]], dim=1)
    if isinstance(out, torch.Tensor):
        return restored
    out.sequences = restored
    return out


def distinct_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distinct, copy_of)``: each distinct row of tokens then mask, and which one every row is."""
    return torch.unique(torch.cat([input_ids, attention_mask.to(input_ids.dtype)], dim=1), dim=0,
                        return_inverse=True)


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

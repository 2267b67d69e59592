"""Forward-pass plumbing shared by every scoring method.

Three things make exact patching cheap without changing its numbers:
``prefix_replay`` reuses the clean run's outputs of the layers below the
patched one (they cannot change), ``frozen_params`` lets a backward pass
compute activation gradients only, and right-padded batches pass an attention
mask only when they contain padding.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import Tensor, nn

from circuitdrift.models.heads import HeadLayout, unwrap
from circuitdrift.tasks.base import TaskBatch


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def moved_like(tensor: Tensor, like: Tensor) -> Tensor:
    """``tensor`` on ``like``'s device and in its dtype: every value one model (or layer) hands another goes
    through here, so a donor on another GPU or in another dtype than the receiver takes one path."""
    return tensor.to(device=like.device, dtype=like.dtype)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels, so a wall-clock timing covers the work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_logits(model: nn.Module, ids: Tensor, batch: TaskBatch, repeat: int = 1) -> Tensor:
    """Logits [repeat * B, T, V] for ``ids`` [B, T] (repeated ``repeat`` times along the batch)."""
    ids, mask = _repeated(ids, batch, repeat)
    return model(input_ids=ids, attention_mask=mask, use_cache=False).logits


def _repeated(ids: Tensor | None, batch: TaskBatch, repeat: int) -> tuple[Tensor | None, Tensor | None]:
    """``ids`` and the attention mask repeated ``repeat`` times along the batch; no mask without padding."""
    mask = None if bool(batch.attention_mask.all()) else batch.attention_mask
    if repeat > 1:
        ids = None if ids is None else ids.repeat(repeat, 1)
        mask = None if mask is None else mask.repeat(repeat, 1)
    return ids, mask


def scored_logits(model: nn.Module, batch: TaskBatch, *, ids: Tensor | None = None, embeds: Tensor | None = None,
                  repeat: int = 1) -> tuple[Tensor, TaskBatch]:
    """The logits a metric reads, and the batch renumbered to them: ``(logits [R*B, A+1, V], view)``.

    Every metric reads each row's answer positions (``target_pos``) and the last prompt position, never the
    rest, so only those are projected onto the vocabulary (``logits_to_keep``): on a 151,643-token vocabulary
    the LM head over every position costs more than the layers, and its [B, T, V] output is what fills
    memory. ``view`` is ``batch`` with ``target_pos`` = 0..A-1 and ``last_prompt_pos`` = A, the columns of the
    returned logits; any metric gives on ``(logits, view)`` what it gives on the full logits and ``batch``
    (tests/unit/test_scored_logits.py). ``ids`` (repeated ``repeat`` times) or ``embeds`` is the input.
    """
    positions = torch.cat([batch.target_pos, batch.last_prompt_pos[:, None]], dim=1).repeat(repeat, 1)
    ids, mask = _repeated(ids, batch, repeat if embeds is None else 1)
    inputs = {"input_ids": ids} if embeds is None else {"inputs_embeds": embeds}
    logits = model(**inputs, attention_mask=mask, use_cache=False, **_keeping(model, positions)).logits
    if logits.shape[:2] != positions.shape:  # a model that projected every position: pick the scored ones here
        logits = logits[torch.arange(logits.shape[0], device=logits.device)[:, None], positions]
    return logits, scored_view(batch)


def scored_view(batch: TaskBatch) -> TaskBatch:
    """``batch`` with its positions renumbered to :func:`scored_logits`' columns."""
    answers = batch.target_pos.shape[1]
    columns = torch.arange(answers, device=batch.target_pos.device).expand_as(batch.target_pos)
    return replace(batch, target_pos=columns, last_prompt_pos=torch.full_like(batch.last_prompt_pos, answers))


def run_heads_only(model: nn.Module, ids: Tensor, batch: TaskBatch) -> None:
    """A forward pass for its hooks (head outputs, layer outputs): no position is projected onto the vocabulary."""
    ids, mask = _repeated(ids, batch, 1)
    model(input_ids=ids, attention_mask=mask, use_cache=False,
          **_keeping(model, torch.zeros(ids.shape[0], 0, dtype=torch.long, device=ids.device)))


def _keeping(model: nn.Module, positions: Tensor) -> dict:
    """``{"logits_to_keep": positions}`` for a model whose forward takes it (every Hugging Face causal LM, and
    wrappers that pass keywords on), else nothing: such a model projects every position."""
    parameters = inspect.signature(model.forward).parameters.values()
    takes = any(p.name == "logits_to_keep" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return {"logits_to_keep": positions} if takes else {}


def input_embeddings(model: nn.Module, ids: Tensor) -> Tensor:
    """Token embeddings [B, T, hidden] as the model's own embedding layer gives them."""
    return unwrap(model).get_input_embeddings()(ids)


@contextmanager
def frozen_params(model: nn.Module) -> Iterator[None]:
    """Parameters stop requiring gradients, so a backward pass costs about one forward."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def record_layer_outputs(model: nn.Module) -> Iterator[list]:
    """Outputs of every decoder block in the next forward pass, in order."""
    layout = HeadLayout.of(model)
    outputs: list = [None] * layout.n_layers
    handles = []
    try:
        for i, block in enumerate(layout.layers):

            def save(module, args, output, i=i):
                outputs[i] = output

            handles.append(block.register_forward_hook(save))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


class _Replay(nn.Module):
    """Stands in for a decoder block whose output is known: returns it, repeated along the batch."""

    def __init__(self, output, repeat: int):
        super().__init__()
        self.output = output
        self.repeat = repeat

    def forward(self, *args, **kwargs):
        return _repeat_batch(self.output, self.repeat)


def _repeat_batch(value, repeat: int):
    if isinstance(value, Tensor):
        return value.repeat(repeat, *([1] * (value.dim() - 1))) if repeat > 1 else value
    if isinstance(value, tuple):
        return tuple(_repeat_batch(v, repeat) for v in value)
    return value


@contextmanager
def prefix_replay(model: nn.Module, layer_outputs: list, start_layer: int, repeat: int) -> Iterator[None]:
    """Blocks below ``start_layer`` replay the clean run's outputs instead of recomputing them.

    Exact whenever nothing below ``start_layer`` is patched, because a block's
    output depends only on the blocks before it.
    """
    layers = HeadLayout.of(model).layers
    originals = [layers[i] for i in range(start_layer)]
    try:
        for i in range(start_layer):
            layers[i] = _Replay(layer_outputs[i], repeat)
        yield
    finally:
        for i, block in enumerate(originals):
            layers[i] = block

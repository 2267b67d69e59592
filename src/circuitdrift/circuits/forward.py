"""Forward-pass plumbing shared by every scoring method.

Three things make exact patching cheap without changing its numbers:
``prefix_replay`` reuses the clean run's outputs of the layers below the
patched one (they cannot change), ``frozen_params`` lets a backward pass
compute activation gradients only, and right-padded batches pass an attention
mask only when they contain padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
    mask = None if bool(batch.attention_mask.all()) else batch.attention_mask
    if repeat > 1:
        ids = ids.repeat(repeat, 1)
        mask = None if mask is None else mask.repeat(repeat, 1)
    return model(input_ids=ids, attention_mask=mask, use_cache=False).logits


def run_logits_from_embeds(model: nn.Module, embeds: Tensor, batch: TaskBatch) -> Tensor:
    mask = None if bool(batch.attention_mask.all()) else batch.attention_mask
    return model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits


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

"""Steering: add a direction to the residual stream of chosen layers at every position.

Two scales (docs/methods.md, "Steering"):
- ``relative`` (default): h <- h + alpha * ||h|| * r_hat, alpha a fraction of each
  position's own residual norm, so one alpha means the same push at any layer or model;
- ``absolute``: h <- h + alpha * r, r the vector as stored (a difference of means).

The hook acts on every forward pass inside the context: the prompt and each
generated token alike. alpha = 0 returns before touching the tensor, so the
model is bit-identical to the unsteered one. ``skip_first`` leaves each
sequence's first token alone (its residual norm is often many times the others',
so a relative push there is very large): the first position the attention mask
marks as real, so a left-padded row skips its own first token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor, nn

from circuitdrift.errors import InputError
from circuitdrift.steer.residual import decoder_layers, residual_hooks

Scale = Literal["relative", "absolute"]
SCALES = ("relative", "absolute")


def steered(h: Tensor, vector: Tensor, alpha: float, scale: Scale = "relative", keep: Tensor | None = None) -> Tensor:
    """``h`` [..., hidden] moved along ``vector`` [hidden] by ``alpha`` (see the module docstring);
    positions where ``keep`` [...] is True are left as they are."""
    r = vector.to(device=h.device, dtype=torch.float32)
    h32 = h.float()
    if scale == "relative":
        push = alpha * h32.norm(dim=-1, keepdim=True) * (r / r.norm())  # [..., hidden]
    elif scale == "absolute":
        push = alpha * r
    else:
        raise InputError(f"steering scale '{scale}': use one of {', '.join(SCALES)}")
    out = h32 + push
    if keep is not None:
        out = torch.where(keep.to(h.device)[..., None], h32, out)
    return out.to(h.dtype)


def first_positions(h: Tensor, mask: Tensor | None) -> Tensor | None:
    """[b, s] True at each row's first real token in this forward pass; None when the pass has none (a
    cached generation step, whose attention mask is longer than its one new position)."""
    b, s = h.shape[:2]
    if mask is not None and mask.dim() == 2 and mask.shape[1] != s:
        return None
    if mask is None or mask.dim() != 2:
        if s == 1:
            return None  # without a mask a one-token pass cannot be told from a cached step
        first = torch.zeros(b, dtype=torch.long, device=h.device)
    else:
        first = mask.to(h.device).long().argmax(dim=1)  # left padding: the first 1
    return torch.arange(s, device=h.device)[None, :] == first[:, None]


@contextmanager
def steering(
    model: nn.Module,
    vector: Tensor,
    layers: Sequence[int],
    alpha: float,
    scale: Scale = "relative",
    *,
    skip_first: bool = False,
) -> Iterator[None]:
    """Inside the context, the output of each block in ``layers`` is steered by ``alpha`` along ``vector``
    (with ``skip_first``, not at each sequence's first token)."""
    n = len(decoder_layers(model))
    bad = [layer for layer in layers if not 0 <= layer < n]
    if bad:
        raise InputError(f"steering layer {bad[0]}: the model has layers 0..{n - 1}")
    if scale not in SCALES:
        raise InputError(f"steering scale '{scale}': use one of {', '.join(SCALES)}")
    if float(vector.norm()) == 0.0:
        raise InputError("steering vector: has norm 0 (the two prompt sets gave the same mean)")
    if alpha == 0:
        yield  # the identity, exactly: no hook at all
        return

    seen: dict[str, Tensor | None] = {}

    def capture(module, args, kwargs):
        seen["mask"] = kwargs.get("attention_mask")

    def push(layer: int, h: Tensor) -> Tensor:
        keep = first_positions(h, seen.get("mask")) if skip_first else None
        return steered(h, vector, alpha, scale, keep)

    handle = model.register_forward_pre_hook(capture, with_kwargs=True) if skip_first else None
    try:
        with residual_hooks(model, push, layers):
            yield
    finally:
        if handle is not None:
            handle.remove()


def layers_from(first: int, n_layers: int, span: Literal["at", "from"]) -> list[int]:
    """The steered layers: ``at`` the chosen one only, or ``from`` it to the last (layers >= l)."""
    if span == "at":
        return [first]
    if span == "from":
        return list(range(first, n_layers))
    raise InputError(f"steering span '{span}': use 'at' or 'from'")

"""Steering: add a direction to the residual stream of chosen layers at every position.

Two scales (docs/methods.md, "Steering"):
- ``relative`` (default): h <- h + alpha * ||h|| * r_hat, alpha a fraction of each
  position's own residual norm, so one alpha means the same push at any layer or model;
- ``absolute``: h <- h + alpha * r, r the vector as stored (a difference of means).

The hook acts on every forward pass inside the context: the prompt and each
generated token alike. alpha = 0 returns before touching the tensor, so the
model is bit-identical to the unsteered one.
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


def steered(h: Tensor, vector: Tensor, alpha: float, scale: Scale = "relative") -> Tensor:
    """``h`` [..., hidden] moved along ``vector`` [hidden] by ``alpha`` (see the module docstring)."""
    r = vector.to(device=h.device, dtype=torch.float32)
    h32 = h.float()
    if scale == "relative":
        push = alpha * h32.norm(dim=-1, keepdim=True) * (r / r.norm())  # [..., hidden]
    elif scale == "absolute":
        push = alpha * r
    else:
        raise InputError(f"steering scale '{scale}': use one of {', '.join(SCALES)}")
    return (h32 + push).to(h.dtype)


@contextmanager
def steering(
    model: nn.Module,
    vector: Tensor,
    layers: Sequence[int],
    alpha: float,
    scale: Scale = "relative",
) -> Iterator[None]:
    """Inside the context, the output of each block in ``layers`` is steered by ``alpha`` along ``vector``."""
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

    def push(layer: int, h: Tensor) -> Tensor:
        return steered(h, vector, alpha, scale)

    with residual_hooks(model, push, layers):
        yield


def layers_from(first: int, n_layers: int, span: Literal["at", "from"]) -> list[int]:
    """The steered layers: ``at`` the chosen one only, or ``from`` it to the last (layers >= l)."""
    if span == "at":
        return [first]
    if span == "from":
        return list(range(first, n_layers))
    raise InputError(f"steering span '{span}': use 'at' or 'from'")

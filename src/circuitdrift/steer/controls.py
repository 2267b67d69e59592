"""Control directions and the ablation of a direction, for the transfer experiment's controls.

- :func:`random_direction`: a seeded Gaussian direction with the refusal vector's component
  projected out and rescaled to its norm, so a teacher steered along it is pushed exactly as
  hard (same alpha, same norm) along something unrelated to refusal.
- :func:`ablation`: inside the context, h <- h - (h . r_hat) r_hat at the output of the chosen
  blocks, every position (directional ablation, Arditi et al. 2024): what the model computes
  from its component along r is removed. A hook registered after a steering hook on the same
  block runs after it, so ablating r in a model steered along r removes the push altogether.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from circuitdrift.errors import InputError
from circuitdrift.steer.residual import decoder_layers, residual_hooks


def random_direction(reference: Tensor, seed: int) -> Tensor:
    """A direction orthogonal to ``reference`` [hidden], of the same norm, reproducible from ``seed``."""
    ref = reference.detach().double().flatten().cpu()
    norm = float(ref.norm())
    if norm == 0.0 or ref.numel() < 2:
        raise InputError("random direction: the reference vector has norm 0 or a single dimension")
    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(ref.numel(), generator=g, dtype=torch.float64)
    unit = ref / norm
    v = v - (v @ unit) * unit
    v = v - (v @ unit) * unit  # a second pass removes the rounding left by the first
    return (v * (norm / float(v.norm()))).to(reference.dtype).reshape(reference.shape)


def project_out(h: Tensor, vector: Tensor) -> Tensor:
    """``h`` [..., hidden] without its component along ``vector`` [hidden] (computed in float32)."""
    r = vector.to(device=h.device, dtype=torch.float32)
    unit = r / r.norm()
    h32 = h.float()
    return (h32 - (h32 @ unit).unsqueeze(-1) * unit).to(h.dtype)


@contextmanager
def ablation(model: nn.Module, vector: Tensor, layers: Sequence[int]) -> Iterator[None]:
    """Inside the context, the output of each block in ``layers`` has its component along ``vector`` removed."""
    n = len(decoder_layers(model))
    bad = [layer for layer in layers if not 0 <= layer < n]
    if bad:
        raise InputError(f"ablation layer {bad[0]}: the model has layers 0..{n - 1}")
    if float(vector.norm()) == 0.0:
        raise InputError("ablation: the direction has norm 0")
    with residual_hooks(model, lambda layer, h: project_out(h, vector), layers):
        yield

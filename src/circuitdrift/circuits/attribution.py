"""Gradient-based head scores: attribution patching (AtP) and EAP-IG.

AtP approximates the effect of patching head h by a first-order Taylor step:
``M(patched) - M(clean) ~ (z_src - z_clean) . dM/dz`` at the clean run, one
backward pass for all heads. EAP-IG averages the gradient over ``steps``
inputs whose embeddings lie on the line from the counterfactual to the clean
prompt (k / steps for k = 1..steps), so ``steps=1`` is AtP exactly. Parameters
are frozen during the backward pass: only activation gradients are computed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from circuitdrift.circuits.forward import frozen_params, input_embeddings, moved_like, scored_logits
from circuitdrift.circuits.metrics import MetricFn
from circuitdrift.models.heads import HeadLayout, head_hooks
from circuitdrift.tasks.base import TaskBatch


def head_gradients(
    model: nn.Module, batch: TaskBatch, metric: MetricFn, embeds: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Metric, head outputs and gradients on one run from ``embeds`` [B, T, hidden].

    Returns ``(values [B], z [L, B, T, H, d], grad [L, B, T, H, d])``. The metric is
    summed over examples before the backward pass, so each example's gradient is its own.
    """
    layout = HeadLayout.of(model)
    outputs: dict[int, Tensor] = {}

    def keep(layer: int, z: Tensor) -> Tensor:
        outputs[layer] = z
        return z  # returned so that z itself is on the path to the logits

    with frozen_params(model), torch.enable_grad():
        embeds = embeds.detach().requires_grad_(True)
        with head_hooks(model, keep):
            values = metric(*scored_logits(model, batch, embeds=embeds))
        zs = [outputs[layer] for layer in range(layout.n_layers)]
        grads = torch.autograd.grad(values.sum(), zs)
    return values.detach(), torch.stack([z.detach() for z in zs]), torch.stack(grads)


def attribution_effects(
    model: nn.Module, batch: TaskBatch, metric: MetricFn, source: Tensor, relative: bool, steps: int = 1,
    *, keep_clean: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Estimated per-example effect of patching each head from ``source``: [B, L, H].

    ``source`` is [L, B, T, H, d] or broadcastable ([L, 1, 1, H, d] for mean or zero
    ablation). With ``steps > 1`` the gradient is EAP-IG's average along the
    counterfactual-to-clean path of input embeddings. ``keep_clean`` is given the clean run's head
    outputs [L, B, T, H, d] (detached), which the pass computes anyway (circuits/crossmodel.py DonorHeads).
    """
    clean_embeds = input_embeddings(model, batch.clean)
    values, z_clean, grad = head_gradients(model, batch, metric, clean_embeds)
    if keep_clean is not None:
        keep_clean(z_clean)
    if steps > 1:
        corrupt_embeds = input_embeddings(model, batch.corrupt)
        total = grad.clone()
        for k in range(1, steps):
            alpha = k / steps
            mixed = corrupt_embeds + alpha * (clean_embeds - corrupt_embeds)
            total += head_gradients(model, batch, metric, mixed)[2]
        grad = total / steps
    return first_order_effects(source, values, z_clean, grad, relative=relative)


def first_order_effects(source: Tensor, values: Tensor, z_clean: Tensor, grad: Tensor, *, relative: bool) -> Tensor:
    """(z_src - z_clean) . dM/dz per example and head, [B, L, H], from :func:`head_gradients`' outputs.

    Apart from :func:`attribution_effects` so that a receiver's gradients, which do not depend on the
    source, can be computed once and multiplied by many sources (circuits/crossmodel.py's ReceiverCache).
    """
    # in double from the start (a bf16 product loses the small differences CMAP measures), one layer at a time
    # (a double [L, B, T, H, d] would be 4x a bf16 one); the source moves to the receiver's device and dtype first
    effects = torch.stack([((moved_like(source[layer], z).double() - z.double()) * g.double()).sum(dim=(1, 3))
                           for layer, (z, g) in enumerate(zip(z_clean, grad, strict=True))], dim=1)  # [B, L, H]
    if relative:
        effects = effects / values.double()[:, None, None]
    return effects

"""Cross-model activation patching, CMAP (docs/methods.md §4; Prakash et al. 2024).

    dF_X(h) = mean_i [ P_i(B with head h's output taken from X on the same input) - P_i(B) ]

A negative dF_X(h) means fine-tuned model X's version of head h now harms the
base model's computation: the head was degraded. ``exact`` patches each head
(batched as in exact patching); ``attribution`` multiplies the gradient of the
base model's metric at each head by the difference between X's and B's head
outputs, one backward pass for all heads. ``reverse=True`` patches the base
model's heads into X instead.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from circuitdrift.circuits.attribution import attribution_effects
from circuitdrift.circuits.forward import model_device, run_logits, synchronize
from circuitdrift.circuits.metrics import check_differentiable, metric_fn
from circuitdrift.circuits.patching import all_heads, effect, patched_values
from circuitdrift.circuits.scores import HeadScores
from circuitdrift.circuits.scoring import check_method
from circuitdrift.circuits.vocabulary import CMAP_METHODS
from circuitdrift.errors import IncompatibleModelsError
from circuitdrift.models.heads import HeadLayout, record_heads
from circuitdrift.tasks.base import Task, encode, iter_batches


def check_compatible(base: nn.Module, finetuned: nn.Module, base_tokenizer=None, finetuned_tokenizer=None) -> None:
    """Head-by-head comparison needs the same layout and, when given, the same vocabulary."""
    a, b = HeadLayout.of(base).signature(), HeadLayout.of(finetuned).signature()
    for key in a:
        if a[key] != b[key]:
            raise IncompatibleModelsError(
                f"models differ in {key}: base has {a[key]}, fine-tuned has {b[key]}; CMAP needs the same layout"
            )
    if base_tokenizer is not None and finetuned_tokenizer is not None:
        va, vb = base_tokenizer.get_vocab(), finetuned_tokenizer.get_vocab()
        if va != vb:
            raise IncompatibleModelsError(
                f"tokenizers differ: base vocabulary has {len(va)} tokens, fine-tuned has {len(vb)}"
                + ("" if len(va) != len(vb) else " (same size, different ids)")
            )


def cross_model_patch(
    base: nn.Module,
    finetuned: nn.Module,
    tokenizer,
    task: Task,
    method: str = "exact",
    metric: str = "prob",
    batch_size: int = 16,
    reverse: bool = False,
    finetuned_tokenizer=None,
) -> HeadScores:
    """dF_X(h) for every head (``delta``), see the module docstring.

    Each model runs on its own device and dtype (a donor spread with ``auto-map`` against a plain load of
    the receiver, or bf16 against float32): the donor's head outputs are moved to the receiver's device
    and dtype where they are patched in (:func:`~circuitdrift.circuits.forward.moved_like`).
    """
    check_method(method, CMAP_METHODS)
    check_differentiable(metric, method)
    check_compatible(base, finetuned, tokenizer, finetuned_tokenizer)
    receiver, donor = (finetuned, base) if reverse else (base, finetuned)
    measure = metric_fn(metric)
    layout = HeadLayout.of(receiver)
    device, donor_device = model_device(receiver), model_device(donor)
    total = torch.zeros(layout.shape, dtype=torch.float64)
    started = time.perf_counter()
    for batch in iter_batches(encode(task, tokenizer), batch_size, tokenizer.pad_token_id):
        batch, donor_batch = batch.to(device), batch.to(donor_device)
        with torch.no_grad(), record_heads(donor) as donor_heads:
            run_logits(donor, donor_batch.clean, donor_batch)
        if method == "exact":
            clean, patched = patched_values(receiver, batch, donor_heads, measure, all_heads(layout))
            total += effect(clean, patched, relative=False).sum(-1).view(layout.shape).cpu()
        else:
            source = torch.stack([donor_heads[layer].to(device) for layer in range(layout.n_layers)])
            total += attribution_effects(receiver, batch, measure, source, relative=False).sum(0).cpu()
    synchronize(device)
    meta = {"task": task.name, "method": method, "metric": metric, "direction":
            "base-into-finetuned" if reverse else "finetuned-into-base", "n_examples": len(task),
            "timing": {"total_s": time.perf_counter() - started}}
    return HeadScores(total / len(task), meta)

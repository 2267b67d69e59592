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

from circuitdrift.circuits.attribution import attribution_effects, first_order_effects, head_gradients
from circuitdrift.circuits.forward import input_embeddings, model_device, run_heads_only, synchronize
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


class ReceiverCache:
    """One receiver's clean-run metric values, head outputs and metric gradients, per (metric, batch).

    Why: in forward attribution CMAP the receiver is the base model, the same at every checkpoint of a
    run, and its forward and backward pass cost as much as the donor's forward; a measurement worker keeps
    one cache per probe and reuses them for every checkpoint. The results are the same tensors as
    recomputing them (the passes are deterministic), so the CMAP is bit-identical. A batch whose token
    ids differ from the cached one's is refused: the cache belongs to one task and batch size. Entries
    past ``max_bytes`` (head outputs and gradients of a large model) are computed each time, not kept.
    """

    def __init__(self, receiver: nn.Module, *, max_bytes: int = 1 << 30):
        self.receiver = receiver
        self.max_bytes = max_bytes
        self.kept_bytes = 0
        self._entries: dict[tuple[str, int], tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}

    def gradients(self, metric: str, index: int, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(values, z_clean, grad) of :func:`~circuitdrift.circuits.attribution.head_gradients` on ``batch``."""
        key = (metric, index)
        if key in self._entries:
            ids, found = self._entries[key]
            if not torch.equal(ids, batch.clean):
                raise ValueError(f"ReceiverCache: batch {index} differs from the cached one (another task?)")
            return found
        found = head_gradients(self.receiver, batch, metric_fn(metric),
                               input_embeddings(self.receiver, batch.clean))
        size = sum(t.nbytes for t in found)
        if self.kept_bytes + size <= self.max_bytes:
            self._entries[key] = (batch.clean, found)
            self.kept_bytes += size
        return found


class DonorHeads:
    """One donor's clean-run head outputs ``[L, B, T, H, d]`` per batch of one task, computed once.

    Why: a checkpoint's CMAP on two metrics patches the same donor outputs into the base twice, and
    re-finding the checkpoint's circuit by attribution runs that clean pass already (:meth:`keep` takes its
    outputs: ``head_scores(..., keep_clean=donor.keep)``). The outputs are those of the same deterministic
    pass (the attribution pass's, with gradients on, equal the heads-only pass's bit for bit), so the CMAP is
    unchanged. A batch whose token ids differ from the kept one's is computed afresh, and so is every batch
    past ``max_bytes`` (a large model's head outputs over many batches stay on its device otherwise).
    """

    def __init__(self, donor: nn.Module, *, max_bytes: int = 1 << 30):
        self.donor = donor
        self.max_bytes = max_bytes
        self.kept_bytes = 0
        self._kept: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.passes = 0  # clean passes this object ran itself (the rest were kept or reused)

    def keep(self, index: int, batch, heads: torch.Tensor) -> None:
        """Keep ``heads`` [L, B, T, H, d], the donor's clean head outputs on ``batch`` (the ``index``-th), within
        the byte budget."""
        old = self._kept.pop(index, None)
        if old is not None:
            self.kept_bytes -= old[1].nbytes
        if self.kept_bytes + heads.nbytes <= self.max_bytes:
            self._kept[index] = (batch.clean, heads.detach())
            self.kept_bytes += heads.nbytes

    def heads(self, index: int, batch) -> torch.Tensor:
        """The donor's clean head outputs on ``batch`` (on the donor's device): kept, or run now and kept."""
        kept = self._kept.get(index)
        if kept is not None and torch.equal(kept[0].to(batch.clean.device), batch.clean):  # False for other shapes
            return kept[1]
        with torch.no_grad(), record_heads(self.donor) as recorded:
            run_heads_only(self.donor, batch.clean, batch)
        self.passes += 1
        heads = torch.stack([recorded[layer] for layer in range(len(recorded))])
        self.keep(index, batch, heads)
        return heads


def cross_model_patch(
    base: nn.Module,
    finetuned: nn.Module,
    tokenizer,
    task: Task,
    *,
    method: str = "exact",
    metric: str = "prob",
    batch_size: int = 16,
    reverse: bool = False,
    finetuned_tokenizer=None,
    cache: ReceiverCache | None = None,
    donor_heads: DonorHeads | None = None,
) -> HeadScores:
    """dF_X(h) for every head (``delta``), see the module docstring.

    Each model runs on its own device and dtype (a donor spread with ``auto-map`` against a plain load of
    the receiver, or bf16 against float32): the donor's head outputs are moved to the receiver's device
    and dtype where they are patched in (:func:`~circuitdrift.circuits.forward.moved_like`). ``cache``
    (attribution only, used when it holds this call's receiver) reuses the receiver's gradients;
    ``donor_heads`` (used when it holds this call's donor) the donor's clean head outputs.
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
    cached = cache if cache is not None and cache.receiver is receiver and method == "attribution" else None
    donor_side = donor_heads if donor_heads is not None and donor_heads.donor is donor else DonorHeads(donor)
    for index, batch in enumerate(iter_batches(encode(task, tokenizer), batch_size, tokenizer.pad_token_id)):
        batch, donor_batch = batch.to(device), batch.to(donor_device)
        source = donor_side.heads(index, donor_batch).to(device)  # [L, B, T, H, d]
        if method == "exact":
            clean, patched = patched_values(receiver, batch, dict(enumerate(source)), measure, all_heads(layout))
            total += effect(clean, patched, relative=False).sum(-1).view(layout.shape).cpu()
            continue
        if cached is None:
            total += attribution_effects(receiver, batch, measure, source, relative=False).sum(0).cpu()
        else:
            values, z_clean, grad = cached.gradients(metric, index, batch)
            total += first_order_effects(source, values, z_clean, grad, relative=False).sum(0).cpu()
    synchronize(device)
    meta = {"task": task.name, "method": method, "metric": metric, "direction":
            "base-into-finetuned" if reverse else "finetuned-into-base", "n_examples": len(task),
            "timing": {"total_s": time.perf_counter() - started}}
    return HeadScores(total / len(task), meta)

"""Circuit-preserving SFT (docs/methods.md §6): SFT plus a penalty that keeps chosen heads' outputs at the base's.

    L = L_SFT + lambda * sum_{h in H} mean_t || a_h(pi)_t - a_h(pi_0)_t ||^2

``a_h`` is head h's output at the input of the attention output projection (the
hook point of patching and CMAP, models/heads.py), ``t`` runs over every
non-padding token of the training sequence, prompt and completion alike: the
prior capabilities the heads serve are read on prompts, so the prompt is where
their function must be kept. The squared norm is over the head dimension; the
mean over tokens makes lambda independent of sequence length; the sum over H
makes it grow with the number of protected heads.

pi_0 is the frozen base: a copy of the model taken when the trainer is built
(full fine-tuning; the weights the run starts from), or, with LoRA, the same
model with its adapters disabled (no copy). The penalty is computed on TRL's
own training batch inside ``compute_loss``; the hooks that read the policy's
heads live only for that forward pass and are removed before backward, so
activation checkpointing's recomputation does not fire them again.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from trl import SFTTrainer

from circuitdrift.circuits.scores import Head, head_name
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, head_hooks, unwrap
from circuitdrift.tasks.base import Task
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.data import sft_dataset
from circuitdrift.train.preservation import DEFAULT_LAMBDA, Preservation, heads_from_json  # noqa: F401 (re-exported)
from circuitdrift.train.sft import sft_args
from circuitdrift.train.trainer_args import trainer_inputs

FORWARD_KEYS = ("input_ids", "attention_mask", "position_ids")  # what both forward passes read from the batch


def heads_by_layer(heads: Sequence[Head], layout: HeadLayout) -> dict[int, list[int]]:
    """{layer: [head, ...]} after checking every head exists in this model."""
    out: dict[int, list[int]] = defaultdict(list)
    for layer, head in heads:
        if not (0 <= layer < layout.n_layers and 0 <= head < layout.n_heads):
            raise InputError(f"preserve: head {head_name(layer, head)} is outside the model "
                             f"({layout.n_layers} layers x {layout.n_heads} heads)")
        out[layer].append(head)
    return {layer: sorted(hs) for layer, hs in sorted(out.items())}


@contextmanager
def live_heads(model: nn.Module, chosen: dict[int, list[int]]) -> Iterator[dict[int, Tensor]]:
    """The chosen layers' head outputs of the next forward pass, kept in the graph: ``{layer: [b, s, H, d]}``.

    The hook keeps a view and computes nothing: an operation recorded inside a checkpointed layer would be
    missing from its recomputation (the hook is gone by then) and activation checkpointing would refuse it.
    """
    store: dict[int, Tensor] = {}

    def save(layer: int, z: Tensor) -> None:
        store[layer] = z
        return None

    with head_hooks(model, save, layers=list(chosen)):
        yield store


def head_penalty(policy: dict[int, Tensor], reference: dict[int, Tensor], chosen: dict[int, list[int]],
                 mask: Tensor | None) -> Tensor:
    """Sum over the chosen heads of the mean over tokens (mask [b, s], 1 = real token) of the squared L2 distance."""
    total = None
    for layer, heads in chosen.items():
        if layer not in policy or layer not in reference:
            raise InputError(f"preserve: layer {layer}'s heads were not recorded (the layer never ran)")
        diff = policy[layer][:, :, heads].float() - reference[layer][:, :, heads].float()  # [b, s, |H_l|, d]
        sq = diff.pow(2).sum(-1)  # [b, s, |H_l|]
        if mask is None:
            per_head = sq.mean(dim=(0, 1))
        else:
            m = mask.to(sq.dtype)[..., None]  # [b, s, 1]
            per_head = (sq * m).sum(dim=(0, 1)) / m.sum().clamp(min=1)
        total = per_head.sum() if total is None else total + per_head.sum()
    if total is None:
        raise InputError("preserve: no heads to preserve")
    return total


class ReferenceHeads:
    """pi_0's head outputs on a batch: a frozen copy of the model, or the same PEFT model with adapters disabled.

    The copy is taken before TRL wraps the model: TRL patches the model's ``forward`` with a closure over the
    original, so a copy taken afterwards would still run the policy.
    """

    def __init__(self, model: nn.Module, chosen: dict[int, list[int]], lora: bool):
        self.chosen = chosen
        self.lora = lora
        self.copy = None if lora else copy.deepcopy(unwrap(model)).eval().requires_grad_(False)

    def __call__(self, model: nn.Module, inputs: dict) -> dict[int, Tensor]:
        if not self.lora:
            self._follow(model)
        source = model if self.lora else self.copy
        context = source.disable_adapter() if self.lora else nullcontext()
        with torch.no_grad(), context, live_heads(source, self.chosen) as store:
            source(**inputs, use_cache=False)
        return {layer: z.detach() for layer, z in store.items()}


    def _follow(self, policy: nn.Module) -> None:
        """Put the copy where the policy is, in its dtype: the Trainer moves the policy (to the GPU) after the copy
        was taken, and the batches it feeds are on the policy's device."""
        p, q = next(policy.parameters()), next(self.copy.parameters())
        if (q.device, q.dtype) != (p.device, p.dtype):
            self.copy.to(device=p.device, dtype=p.dtype)


class CircuitPreservingSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer with the head-preservation penalty added to its loss; logs ``head_drift`` (the penalty)."""

    def __init__(self, model: nn.Module, *args, preservation: Preservation, **kwargs):
        chosen = heads_by_layer(preservation.parsed(), HeadLayout.of(model))
        lora = kwargs.get("peft_config") is not None or hasattr(model, "disable_adapter")
        reference = ReferenceHeads(model, chosen, lora)  # before TRL wraps the model (see ReferenceHeads)
        super().__init__(model, *args, **kwargs)
        self.preservation = preservation
        self._chosen = chosen
        self._reference = reference

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forward = {k: inputs[k] for k in FORWARD_KEYS if k in inputs}
        reference = self._reference(self.accelerator.unwrap_model(model), forward)
        with live_heads(model, self._chosen) as policy:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # the hooks are gone here, before backward: a checkpointed layer's recomputation does not refire them
        penalty = head_penalty(policy, reference, self._chosen, inputs.get("attention_mask"))
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["head_drift"].append(float(penalty.detach()))
        if num_items_in_batch is not None:  # the SFT loss is a share of the accumulated batch: so is the penalty
            penalty = penalty / self.current_gradient_accumulation_steps
        extra = self.preservation.lam * penalty
        if return_outputs:
            loss, outputs = result
            return loss + extra, outputs
        return result + extra


def preserve_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    *,
    config: TrainConfig,
    output_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
    peft_config=None,
    progress: bool = False,
    preservation: Preservation | None = None,
) -> CircuitPreservingSFTTrainer:
    """The SFT run of :func:`~circuitdrift.train.sft.sft_trainer`, same data and arguments, plus the penalty."""
    if preservation is None:
        raise InputError("sft-preserve: give the heads to preserve (--heads FILE)")
    return CircuitPreservingSFTTrainer(
        args=sft_args(config, output_dir, progress),
        train_dataset=sft_dataset(task, config),
        preservation=preservation,
        **trainer_inputs(model, tokenizer, callbacks, peft_config),
    )

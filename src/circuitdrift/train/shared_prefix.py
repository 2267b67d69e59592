"""The arithmetic TRL's trainers repeat on a CPU, done once: the prompts' shared start and the unscored positions.

At the demo's recipe (51-token chat prompts, 3-4 scored tokens) the model's arithmetic is most of a training
step, not overhead (docs/benchmarks.md), and TRL spends much of it on work whose result it already has:

* Every chat prompt starts with the same tokens (the system turn and the user header). Inside TRL's own SFT
  forward, :func:`shared_prefix_backbone` runs them once per batch (:mod:`circuitdrift.models.prefix`); GRPO's
  prompts get the same through :mod:`.prompt_pass`.
* On a device without Triton TRL's fused LM head projects every position onto the vocabulary, although only
  the completion's positions are scored (on CUDA it projects only those): :func:`compact_lm_head`.
"""

from __future__ import annotations

import contextlib

import torch
import trl.trainer.utils as trl_utils
from accelerate.utils import is_peft_model
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast

from circuitdrift.models.methods import replaced_method
from circuitdrift.models.prefix import forward_with_shared_prefix, prefix_shareable

# TRL's fused forward scales the logits by these config fields when a model has them; the shared-prefix path
# covers only models without them and leaves the rest to TRL's own forward.
_LOGIT_FIELDS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                 "logits_scaling")


def supports_shared_prefix(model: PreTrainedModel) -> bool:
    """True for a decoder the shared prefix runs exactly (:func:`~circuitdrift.models.prefix.prefix_shareable`),
    whose logits are ``hidden @ lm_head.T`` (no scaling, soft-capping or bias), without dropout."""
    config = model.config.get_text_config()
    head = model.get_output_embeddings()
    return (
        prefix_shareable(model)
        and head is not None
        and getattr(head, "bias", None) is None
        and all(getattr(config, field, None) is None for field in _LOGIT_FIELDS)
        and not _has_dropout(model)  # with dropout, rows sharing a prefix would share one dropout mask
    )


def trainer_takes_shared_prefix(trainer) -> bool:
    """Whether a TRL trainer's run can take the shared-prefix path at all: one process, a model without LoRA
    or activation checkpointing (no key/value cache in training) that :func:`supports_shared_prefix`. Hooks
    are checked per call (:func:`~circuitdrift.models.prefix.unhooked`)."""
    return (trainer.accelerator.num_processes == 1 and not is_peft_model(trainer.model)
            and not getattr(trainer.args, "activation_checkpointing", False)
            and supports_shared_prefix(trainer.model))


def _has_dropout(model: PreTrainedModel) -> bool:
    config = model.config.get_text_config()
    rates = [getattr(config, f, 0.0) or 0.0 for f in ("attention_dropout", "hidden_dropout", "dropout")]
    return any(r > 0 for r in rates) or any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


@contextlib.contextmanager
def shared_prefix_backbone(model: PreTrainedModel, read: torch.Tensor | None = None):
    """Within: the model's backbone runs the prefix its rows share once (TRL's SFT forward calls it with
    right-padded rows that all start with the chat template's system turn), and with ``read`` (``[rows,
    columns]``: the positions scored, :func:`scored_positions`) the last layer's MLP only there. Restored in
    ``finally``."""
    backbone = getattr(model, model.base_model_prefix)
    original = backbone.forward

    def forward(*args, input_ids=None, attention_mask=None, position_ids=None, use_cache=None, **kwargs):
        if args or kwargs or input_ids is None or attention_mask is None or not torch.is_grad_enabled():
            return original(*args, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=use_cache, **kwargs)
        if position_ids is None:
            position_ids = torch.arange(input_ids.size(1), device=input_ids.device).expand_as(input_ids)
        hidden, _ = forward_with_shared_prefix(
            backbone, forward=original, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            read=read if read is not None and read.shape == input_ids.shape else None)
        return BaseModelOutputWithPast(last_hidden_state=hidden)

    with replaced_method(backbone, "forward", forward):
        yield


def scored_positions(inputs: dict) -> torch.Tensor | None:
    """The positions TRL's compact LM head scores in a batch of ``inputs``: those before a label, the label
    being the next token (``labels``) or the position's own (``shift_labels``). None without labels."""
    if inputs.get("shift_labels") is not None:
        return inputs["shift_labels"] != -100
    labels = inputs.get("labels")
    if labels is None:
        return None
    read = torch.zeros_like(labels, dtype=torch.bool)
    read[:, :-1] = labels[:, 1:] != -100
    return read


@contextlib.contextmanager
def compact_lm_head():
    """Within: TRL's fused LM head scores only labelled positions on every device (its CUDA path)."""
    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: True  # read by the fused forward only, to choose compact scoring
    try:
        yield
    finally:
        trl_utils._use_triton = original

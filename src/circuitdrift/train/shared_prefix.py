"""The arithmetic TRL repeats on a CPU, done once: shared prompts and the unscored positions.

A GRPO step scores ``prompts x G`` sequences whose G copies of a prompt are the
same tokens, and on a device without Triton TRL's fused LM head projects every
position of every sequence onto the vocabulary, although only the completion's
positions are scored (on CUDA it projects only those). At the demo's recipe
(51-token prompts, 4-token completions) the model's arithmetic is then most of
the step, not overhead (docs/benchmarks.md). Two cuts, same mathematics:

* :func:`completion_logps`: the policy's log-probabilities of the completion
  tokens, with the backbone run once per distinct prompt (its key/value cache,
  still on the autograd graph, gathered to every copy) and then on the
  completion tokens only, and TRL's own chunked log-prob kernel applied to the
  completion positions only. Positions are numbered as TRL's forward numbers
  them (0 .. P+C-1, padding included), so every score is the one TRL's forward
  computes, up to float rounding of the reordered sums.
* :func:`compact_lm_head`: inside it TRL's fused LM head scores only the
  positions that carry a label on every device, as it already does on CUDA
  (the SFT loss covers the answer, 3 of about 55 positions).
"""

from __future__ import annotations

import contextlib
import inspect

import torch
import trl.trainer.utils as trl_utils
from transformers import PreTrainedModel
from trl.kernels import ChunkedLogProbFunction

# TRL's fused forward scales the logits by these config fields when a model has them; the shared-prefix path
# covers only models without them and leaves the rest to TRL's own forward.
_LOGIT_FIELDS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                 "logits_scaling")


def supports_shared_prefix(model: PreTrainedModel) -> bool:
    """True for a plain decoder whose logits are ``hidden @ lm_head.T`` (no scaling, soft-capping or bias),
    without dropout."""
    config = model.config.get_text_config()
    head = model.get_output_embeddings()
    return (
        config is model.config
        and not getattr(config, "is_encoder_decoder", False)
        and head is not None
        and getattr(head, "bias", None) is None
        and all(getattr(config, field, None) is None for field in _LOGIT_FIELDS)
        and hasattr(model, model.base_model_prefix)
        and not _has_dropout(model)  # with dropout, G copies of a prompt would share one dropout mask
    )


def _has_dropout(model: PreTrainedModel) -> bool:
    config = model.config.get_text_config()
    rates = [getattr(config, f, 0.0) or 0.0 for f in ("attention_dropout", "hidden_dropout", "dropout")]
    return any(r > 0 for r in rates) or any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


def completion_logps(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_length: int,
    temperature: float,
    compute_entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (and entropies) of the last ``completion_length`` tokens, zero where masked.

    The same quantity as TRL's ``GRPOTrainer._get_per_token_logps_and_entropies`` for a text model:
    rows are ``prompt + completion`` (prompts left-padded), and rows with the same prompt tokens and mask
    share one backbone pass over the prompt.
    """
    backbone = getattr(model, model.base_model_prefix)
    prompt_len = input_ids.size(1) - completion_length
    if prompt_len < 1 or completion_length < 1:
        raise ValueError(f"need a prompt and a completion, got {prompt_len} and {completion_length} tokens")
    prompt_ids, prompt_mask = input_ids[:, :prompt_len], attention_mask[:, :prompt_len]
    distinct, copy_of = torch.unique(torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], dim=1), dim=0,
                                     return_inverse=True)
    positions = torch.arange(input_ids.size(1), device=input_ids.device).unsqueeze(0)
    prompt_out = backbone(input_ids=distinct[:, :prompt_len], attention_mask=distinct[:, prompt_len:],
                          position_ids=positions[:, :prompt_len], use_cache=True)
    cache = _output_cache(prompt_out)
    cache.reorder_cache(copy_of)  # each row's copy of its prompt's keys and values, still on the graph
    completion_out = backbone(input_ids=input_ids[:, prompt_len:], attention_mask=attention_mask,
                              position_ids=positions[:, prompt_len:], use_cache=True, **_cache_kwarg(backbone, cache))
    # the token at position t is scored from the hidden state at t - 1: the prompt's last, then the completion's
    hidden = torch.cat([prompt_out.last_hidden_state[copy_of, -1:], completion_out.last_hidden_state[:, :-1]], dim=1)
    labels = input_ids[:, prompt_len:]
    mask = attention_mask[:, prompt_len:].bool()
    head = model.get_output_embeddings()
    outputs = ("log_probs", "entropy") if compute_entropy else ("log_probs",)
    logps, entropy, *_ = ChunkedLogProbFunction.apply(
        hidden[mask], head.weight, None, labels[mask], temperature, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0,
        outputs,
    )
    # masked_scatter keeps an all-masked batch on the graph (as TRL's compact path does)
    logps = logps.new_zeros(mask.shape).masked_scatter(mask, logps)
    if entropy is not None:
        entropy = entropy.new_zeros(mask.shape).masked_scatter(mask, entropy)
    return logps, entropy


@contextlib.contextmanager
def shared_prefix_generation(model: PreTrainedModel):
    """Within: ``model.generate`` on rows that repeat a prompt fills the key/value cache once per distinct prompt.

    GRPO's rollouts are G copies of each prompt. The prompt (all but its last token) is run once per distinct
    row, in ``generate``'s own position numbering (padding skipped), its cache gathered to every copy, and
    ``generate`` continues from it: the same sampler, the same random draws, the same logits up to float rounding.
    Restored in ``finally``.
    """
    original = model.generate
    patched_before = "generate" in vars(model)

    def generate(*args, input_ids=None, attention_mask=None, **kwargs):
        if args or input_ids is None or attention_mask is None or input_ids.size(1) < 2 or "cache" in kwargs \
                or "past_key_values" in kwargs:
            return original(*args, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        distinct, copy_of = torch.unique(torch.cat([input_ids, attention_mask.to(input_ids.dtype)], dim=1), dim=0,
                                         return_inverse=True)
        if distinct.size(0) == input_ids.size(0):
            return original(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        length = input_ids.size(1)
        ids, mask = distinct[:, :length - 1], distinct[:, length:2 * length - 1]
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)  # generate's numbering
        backbone = getattr(model, model.base_model_prefix)
        with torch.no_grad():
            cache = _output_cache(backbone(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True))
        cache.reorder_cache(copy_of)
        return original(input_ids=input_ids, attention_mask=attention_mask, **_cache_kwarg(model, cache), **kwargs)

    model.generate = generate
    try:
        yield
    finally:
        if patched_before:
            model.generate = original
        else:
            del model.generate  # the class's method shows through again


def _output_cache(output):
    """The key/value cache of a model output (``cache`` from transformers 5.x, ``past_key_values`` before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _cache_kwarg(backbone, cache) -> dict:
    name = "cache" if "cache" in inspect.signature(backbone.forward).parameters else "past_key_values"
    return {name: cache}


@contextlib.contextmanager
def compact_lm_head():
    """Within: TRL's fused LM head scores only labelled positions on every device (its CUDA path)."""
    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: True  # read by the fused forward only, to choose compact scoring
    try:
        yield
    finally:
        trl_utils._use_triton = original

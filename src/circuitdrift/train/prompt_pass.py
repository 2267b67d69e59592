"""One pass over a GRPO step's prompts serves both its rollouts and its loss.

TRL samples a step's completions with ``generate`` (whose first act is a forward pass over every prompt) and
then scores them in ``compute_loss`` with a second forward pass over the same prompts, at the same weights
(one optimizer step per rollout batch). Here the prompts are run once, on the autograd graph, when the
rollouts are generated (:func:`reused_prompt_pass`): ``generate`` continues from a detached copy of its
keys and values, and :func:`completion_logps` scores the completions on top of the same pass, running only
the completion tokens. Each distinct prompt is run once (GRPO's G rollouts repeat it), its shared prefix once
for all (:mod:`.shared_prefix`). Where the pass does not fit the loss's call (other prompts, weights changed
since, no gradient wanted) the prompts are run again, the same way: the same numbers either way.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import trl.trainer.utils as trl_utils
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache
from trl.kernels import ChunkedLogProbFunction

from circuitdrift.models.methods import replaced_method
from circuitdrift.models.prefix import (
    cache_kwarg,
    distinct_rows,
    forward_with_shared_prefix,
    gathered_cache,
    generate_from_cache,
    prefix_first,
)


@dataclass
class PromptPass:
    """The backbone run over distinct left-padded prompts, laid out prefix first (:func:`prefix_first`)."""

    prompts: torch.Tensor  # [distinct, 2 * width]: each prompt's tokens then its mask, as the rows arrived
    input_ids: torch.Tensor  # [distinct, width], prefix first
    attention_mask: torch.Tensor
    lengths: torch.Tensor  # real tokens per prompt: the position of its first completion token
    last_hidden: torch.Tensor  # [distinct, hidden] at the prompt's last token: scores the first completion token
    cache: DynamicCache  # keys and values of every column, on the graph when the pass kept it
    weights_version: tuple[int, ...]  # the parameters' in-place versions when it ran: any update invalidates it


def run_prompt_pass(model: PreTrainedModel, prompts: torch.Tensor) -> PromptPass:
    """The backbone over ``prompts`` (rows of :func:`distinct_rows`), with or without a graph as the
    caller's grad mode says."""
    width = prompts.size(1) // 2
    ids, mask, positions = prefix_first(prompts[:, :width], prompts[:, width:])
    last_only = torch.zeros_like(ids, dtype=torch.bool)
    last_only[:, -1] = True  # the prompt's last token scores the first completion token; the rest fill the cache
    hidden, cache = forward_with_shared_prefix(getattr(model, model.base_model_prefix), input_ids=ids,
                                               attention_mask=mask, position_ids=positions, read=last_only)
    return PromptPass(prompts=prompts, input_ids=ids, attention_mask=mask, lengths=mask.long().sum(1),
                      last_hidden=hidden[:, -1], cache=cache, weights_version=weights_version(model))


def weights_version(model: PreTrainedModel) -> tuple[int, ...]:
    return tuple(p._version for p in model.parameters())


def fits(prompt_pass: PromptPass | None, model: PreTrainedModel, prompts: torch.Tensor) -> bool:
    """Whether ``prompt_pass`` is these distinct prompts, on the graph, at the model's current weights."""
    return (prompt_pass is not None and torch.is_grad_enabled() and prompt_pass.last_hidden.requires_grad
            and torch.equal(prompt_pass.prompts, prompts)  # False where the shapes differ
            and prompt_pass.weights_version == weights_version(model))


def completion_logps(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    completion_length: int,
    temperature: float,
    compute_entropy: bool = True,
    prompt_pass: PromptPass | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """Per-token log-probs (and entropies) of the last ``completion_length`` tokens, zero where masked, and
    whether ``prompt_pass`` served the prompts.

    The same quantity as TRL's ``GRPOTrainer._get_per_token_logps_and_entropies`` for a text model: rows are
    ``prompt + completion`` (prompts left-padded). The prompts come from ``prompt_pass`` where it :func:`fits`,
    else from a new pass; then only the completion tokens are run, row by row.
    """
    prompt_len = input_ids.size(1) - completion_length
    if prompt_len < 1 or completion_length < 1:
        raise ValueError(f"need a prompt and a completion, got {prompt_len} and {completion_length} tokens")
    distinct, copy_of = distinct_rows(input_ids[:, :prompt_len], attention_mask[:, :prompt_len])
    reused = fits(prompt_pass, model, distinct)
    if not reused:
        prompt_pass = run_prompt_pass(model, distinct)
    completion_mask = attention_mask[:, prompt_len:]
    # the token at position t is scored from the hidden state at t - 1: the prompt's last, then the completion's
    # own but its last (which scores nothing and is attended by nothing, so it is not run)
    hidden = prompt_pass.last_hidden[copy_of].unsqueeze(1)
    if completion_length > 1:
        hidden = torch.cat([hidden, _completion_hidden(model, prompt_pass, copy_of, input_ids[:, prompt_len:-1],
                                                       completion_mask[:, :-1])], dim=1)
    labels, mask = input_ids[:, prompt_len:], completion_mask.bool()
    outputs = ("log_probs", "entropy") if compute_entropy else ("log_probs",)
    logps, entropy, *_ = ChunkedLogProbFunction.apply(
        hidden[mask], model.get_output_embeddings().weight, None, labels[mask], temperature,
        trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs,
    )
    # masked_scatter keeps an all-masked batch on the graph (as TRL's compact path does)
    logps = logps.new_zeros(mask.shape).masked_scatter(mask, logps)
    if entropy is not None:
        entropy = entropy.new_zeros(mask.shape).masked_scatter(mask, entropy)
    return logps, entropy, reused


def _completion_hidden(model: PreTrainedModel, prompt_pass: PromptPass, copy_of: torch.Tensor,
                       tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The backbone's last hidden states over completion ``tokens``, each row on its prompt's keys and values."""
    backbone = getattr(model, model.base_model_prefix)
    cache = gathered_cache(prompt_pass.cache, copy_of, config=model.config)
    positions = prompt_pass.lengths[copy_of].unsqueeze(1) + torch.arange(tokens.size(1), device=tokens.device)
    out = backbone(input_ids=tokens, attention_mask=torch.cat([prompt_pass.attention_mask[copy_of], mask], dim=1),
                   position_ids=positions, use_cache=True, **cache_kwarg(backbone, cache))
    return out.last_hidden_state


class PromptPassHolder:
    """The last prompt pass a rollout batch made, handed to the loss once (:meth:`take`)."""

    def __init__(self) -> None:
        self.last: PromptPass | None = None

    def take(self) -> PromptPass | None:
        taken, self.last = self.last, None
        return taken


@contextlib.contextmanager
def reused_prompt_pass(model: PreTrainedModel, holder: PromptPassHolder, *, keep_graph: bool):
    """Within: ``model.generate`` on left-padded prompts runs them in one :class:`PromptPass` (on the graph if
    ``keep_graph``), stores it in ``holder`` and samples from a detached copy of its keys and values.

    ``generate`` re-runs each row's last prompt token (it needs a token to start from) and numbers positions
    by real tokens, as the pass does; it sees the prompt laid out prefix first and returns the rows' own
    prompt tokens in front of what it sampled. Restored in ``finally``.
    """
    original = model.generate

    def generate(*args, input_ids=None, attention_mask=None, **kwargs):
        if args or input_ids is None or attention_mask is None or input_ids.size(1) < 2 or "cache" in kwargs \
                or "past_key_values" in kwargs:
            return original(*args, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        distinct, copy_of = distinct_rows(input_ids, attention_mask)
        with torch.set_grad_enabled(keep_graph):
            holder.last = prompt_pass = run_prompt_pass(model, distinct)
        width = input_ids.size(1)
        cache = gathered_cache(prompt_pass.cache, copy_of, config=model.config, detach=True, columns=width - 1)
        return generate_from_cache(original, model=model, prompt_ids=input_ids,
                                   input_ids=prompt_pass.input_ids[copy_of],
                                   attention_mask=prompt_pass.attention_mask[copy_of], cache=cache, **kwargs)

    with replaced_method(model, "generate", generate):
        yield

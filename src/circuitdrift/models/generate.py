"""Generation, once for every stage: the chat rule, left padding, batched and seeded completions.

The evaluator, steering, the transfer experiment, the organism's card and the
judges all prompt and generate through this module, so a prompt scored in one
stage is the prompt trained on and sampled from in another.

The chat rule: no thinking block is opened. Thinking templates (Qwen3 style)
take ``enable_thinking``. Left unset, the generation prompt ends at
``assistant\\n`` while a rendered assistant turn starts with an empty
``<think>\\n\\n</think>\\n\\n``: SFT's loss would then cover the empty block while
patching scores the letter right after ``assistant\\n``, and the model would be
measured on a context it is not trained on. With ``enable_thinking=False`` the
generation prompt itself ends with the empty block, so the prompt is a prefix of
the rendered conversation and every stage sees the answer at the same position.
Templates that do not take the variable ignore it.

Every parameter of a generation comes from one :class:`Sampling` (re-exported
here); none from the model folder's ``generation_config.json``. The prompts' shared
start (a chat template's system turn) is run once per batch
(:func:`~circuitdrift.models.prefix.generate_sharing_prefix`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.errors import InputError
from circuitdrift.models.prefix import generate_sharing_prefix
from circuitdrift.models.sampling import Sampling, folder_defaults_ignored

__all__ = [
    "CHAT_TEMPLATE_KWARGS",
    "Sampling",
    "chat_completions",
    "chat_prompt",
    "chat_text",
    "completion_mask",
    "completions",
    "eos_ids",
    "generate_batch",
    "left_pad",
    "seeded",
]

# Passed to every apply_chat_template circuitdrift runs, and to TRL's trainers (SFT rows, GRPOConfig).
CHAT_TEMPLATE_KWARGS: dict[str, bool] = {"enable_thinking": False}


def chat_prompt(tokenizer: PreTrainedTokenizerBase, user_turn: str) -> str:
    """The user turn in the tokenizer's chat template, with the assistant turn opened (no thinking block)."""
    messages = [{"role": "user", "content": user_turn}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         **CHAT_TEMPLATE_KWARGS)


def chat_text(tokenizer: PreTrainedTokenizerBase, user_turn: str) -> str:
    """:func:`chat_prompt`, or the raw turn when the tokenizer has no chat template (a base model)."""
    if not getattr(tokenizer, "chat_template", None):
        return user_turn
    return chat_prompt(tokenizer, user_turn)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``input_ids`` and ``attention_mask`` [batch, max_len], padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's eos plus any the model's generation config declares."""
    ids = {tokenizer.eos_token_id}
    declared = getattr(model.generation_config, "eos_token_id", None)
    ids.update(declared if isinstance(declared, list) else [declared])
    return sorted(i for i in ids if i is not None)


def completion_mask(completions: Tensor, eos: Sequence[int]) -> Tensor:
    """[batch, new] 1 for generated tokens up to and including the first eos."""
    is_eos = torch.isin(completions, torch.tensor(list(eos), device=completions.device))
    after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    return (~after_eos).long()


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Sampling under a fixed seed without disturbing the caller's RNG state."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Sequence[int]],
    sampling: Sampling,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Generate for one batch: (prompt ids, prompt mask, completion ids, completion mask), all [batch, *].

    Every parameter comes from ``sampling``; none from the model folder's generation_config.json.
    """
    ids, mask, completions, keep, _ = _generate(model, tokenizer, rows, sampling, first_logits=False)
    return ids, mask, completions, keep


def _generate(model, tokenizer, rows, sampling: Sampling, *, first_logits: bool):
    """generate_batch's work; with ``first_logits`` also the raw logits [batch, V] of the first generated token."""
    device = next(model.parameters()).device
    ids, mask = left_pad(rows, tokenizer.pad_token_id, device)
    eos = eos_ids(model, tokenizer)
    config = sampling.generation_config(eos, tokenizer.pad_token_id)
    with folder_defaults_ignored(model):
        out = generate_sharing_prefix(model, input_ids=ids, attention_mask=mask, generation_config=config,
                                      **({"output_logits": True, "return_dict_in_generate": True} if first_logits
                                         else {}))
    sequences = out.sequences if first_logits else out
    completions = sequences[:, ids.shape[1] :]
    return ids, mask, completions, completion_mask(completions, eos), out.logits[0] if first_logits else None


@torch.no_grad()
def completions_and_first_logprobs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                                   rows: Sequence[Sequence[int]], sampling: Sampling, *,
                                   batch_size: int) -> tuple[list[str], Tensor]:
    """:func:`completions` plus the log-probabilities (float64, CPU, [n, V]) of each row's first generated token.

    Why: the first step of generation is a forward pass over the prompt whose last position is the
    next-token distribution the exact answer KL and the answer probability read, so one pass serves
    accuracy and them (evaluate/checkpoint.py). Equal to a teacher-forced pass up to float rounding.
    """
    texts, first = _decoded(model, tokenizer, rows, sampling, batch_size=batch_size, first_logits=True)
    return texts, torch.cat(first)


def completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Sequence[int]],
    sampling: Sampling,
    *,
    batch_size: int,
) -> list[str]:
    """One decoded completion (special tokens dropped, up to the first eos) per row of prompt ids, in order.

    The model is put in eval mode for the duration and left as it was.
    """
    return _decoded(model, tokenizer, rows, sampling, batch_size=batch_size, first_logits=False)[0]


def _decoded(model, tokenizer, rows, sampling: Sampling, *, batch_size: int,
             first_logits: bool) -> tuple[list[str], list[Tensor]]:
    """The batch loop of :func:`completions` (eval mode for its duration); with ``first_logits`` also each
    batch's first-token log-probabilities."""
    texts: list[str] = []
    first: list[Tensor] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            _, _, out, keep, logits = _generate(model, tokenizer, rows[start : start + batch_size], sampling,
                                                first_logits=first_logits)
            texts += [tokenizer.decode(ids[k.bool()], skip_special_tokens=True) for ids, k in zip(out, keep,
                                                                                                 strict=True)]
            if logits is not None:
                first.append(logits.double().log_softmax(-1).cpu())
    finally:
        model.train(was_training)
    return texts, first


def chat_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    turns: Sequence[str],
    sampling: Sampling,
    *,
    seed: int = 0,
    batch_size: int = 32,
) -> list[str]:
    """One assistant turn per user turn (:func:`chat_text`), stripped, in order; sampled batches share one RNG
    stream seeded by ``seed``, and the caller's RNG state is left as it was."""
    if not turns:
        raise InputError("generate: no prompts")
    device = next(model.parameters()).device
    rows = [tokenizer(chat_text(tokenizer, t), add_special_tokens=False).input_ids for t in turns]
    with seeded(seed, device):
        return [text.strip() for text in completions(model, tokenizer, rows, sampling, batch_size=batch_size)]

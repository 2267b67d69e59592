"""Batched generation on a Task's prompts: left-padded, eos-trimmed, reproducible under a seed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.models.sampling import Sampling, folder_defaults_ignored
from circuitdrift.tasks.base import Task


def prompt_ids(task: Task, tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids of each example's prompt (``Example.clean``), special tokens added only if not templated."""
    add_special = not task.templated
    return [tokenizer(ex.clean, add_special_tokens=add_special).input_ids for ex in task.examples]


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
    device = next(model.parameters()).device
    ids, mask = left_pad(rows, tokenizer.pad_token_id, device)
    eos = eos_ids(model, tokenizer)
    config = sampling.generation_config(eos, tokenizer.pad_token_id)
    with folder_defaults_ignored(model):
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    completions = out[:, ids.shape[1] :]
    return ids, mask, completions, completion_mask(completions, eos)

"""The mechanism check: does the student's learned shift point along the teacher's steering vector,
and which heads changed most?

- Activation shift: mean over prompts of h_student - h_base (the residual stream at
  the last prompt token after each layer), on the behaviour prompts and the
  distillation prompts pooled. Any fine-tuning moves it, so it is read against the
  control: results compare shift_alpha - shift_control with r, paired by seed
  (transfer/mechanism_stats.py). r = mean(forbidden) - mean(benign) points toward
  refusal; a student that learned the teacher's push alpha * r with alpha < 0 (less
  refusal) shifts against r: a *negative* cosine. Unrelated drift gives about 0.
- Direction change: the student's own difference-of-means vector at that layer, on
  the same fit prompts as the teacher's, minus the base model's (the teacher's r);
  its cosine with r says whether the student's refusal direction grew or shrank
  along r (negative: the student separates the two prompt sets less along r).
- Heads: CMAP (circuits/crossmodel.py) of the student into the base model on the
  harmful prompts, the answer being the base model's own first word there (its
  refusal, for a model that refuses); the most negative dF_X(h) are the heads whose
  change most moves the model off its own answer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitdrift.circuits.crossmodel import cross_model_patch
from circuitdrift.circuits.scores import head_name
from circuitdrift.errors import InputError
from circuitdrift.evaluate.kl import sequence_logprob
from circuitdrift.models.generate import Sampling, chat_completions, chat_text, left_pad
from circuitdrift.steer.residual import last_token_residuals
from circuitdrift.tasks.base import Example, Task


def cosine(a: Tensor, b: Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    denom = float(a.norm() * b.norm())
    return float("nan") if denom == 0.0 else float(a @ b) / denom


def activation_shift(student, base, tokenizer, turns: list[str], layer: int) -> Tensor:
    """mean_i h_student(i) - mean_i h_base(i) at ``layer``, last prompt token: [hidden]."""
    return activation_shifts(student, base, tokenizer, turns)[0][layer]


def activation_shifts(student, base, tokenizer, turns: list[str]) -> tuple[Tensor, Tensor]:
    """The shift at every layer [L, hidden], and the base's mean residual norm per layer [L]."""
    texts = [chat_text(tokenizer, t) for t in turns]
    h_base = last_token_residuals(base, tokenizer, texts)  # [L, N, hidden]
    return last_token_residuals(student, tokenizer, texts).mean(1) - h_base.mean(1), h_base.norm(dim=-1).mean(1)


@torch.no_grad()
def prefix_logprobs(model, tokenizer, turns: list[str], prefix: str, batch_size: int = 32) -> list[float]:
    """log P(prefix | user turn in the chat template), summed over the prefix's tokens, one per turn."""
    target = tokenizer(prefix, add_special_tokens=False).input_ids
    if not target:
        raise InputError(f"log-likelihood prefix '{prefix}': tokenises to nothing")
    device = next(model.parameters()).device
    out: list[float] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(turns), batch_size):
            chunk = turns[start : start + batch_size]
            rows = [tokenizer(chat_text(tokenizer, t), add_special_tokens=False).input_ids for t in chunk]
            ids, mask = left_pad(rows, tokenizer.pad_token_id, device)
            completion = torch.tensor([target] * len(chunk), device=device)
            out += sequence_logprob(model, ids, mask, completion, torch.ones_like(completion)).tolist()
    finally:
        model.train(was_training)
    return out


def direction_shift(student, tokenizer, positive: list[str], negative: list[str], base_direction: Tensor,
                    layer: int) -> Tensor:
    """r_student - r_base at ``layer``: the student's difference of means on the fit prompts minus the base's."""
    pos = last_token_residuals(student, tokenizer, [chat_text(tokenizer, t) for t in positive])[layer]
    neg = last_token_residuals(student, tokenizer, [chat_text(tokenizer, t) for t in negative])[layer]
    return pos.mean(0) - neg.mean(0) - base_direction


def own_answer_task(base, tokenizer, turns: list[str]) -> Task | None:
    """The harmful prompts with the base model's own first word as the answer (None when it gives none)."""
    first = [c.split()[0] if c.split() else "" for c in chat_completions(base, tokenizer, turns, Sampling.greedy(4))]
    examples = [Example(chat_text(tokenizer, t), chat_text(tokenizer, t), w) for t, w in zip(turns, first,
                                                                                              strict=True) if w]
    examples = [e for e in examples if tokenizer(e.answer, add_special_tokens=False).input_ids]
    return Task("own-answer", examples, "the base model's own first word", templated=True) if examples else None


def cmap_heads(base, student, tokenizer, task: Task, *, method: str, top: int, batch_size: int) -> dict:
    """dF_X(h) for every head, and the ``top`` most negative."""
    scores = cross_model_patch(base, student, tokenizer, task, method=method, metric="prob", batch_size=batch_size)
    ranked = scores.ranked()[:top]
    return {"delta": scores.as_lists(), "top": [{"head": head_name(layer, head),
                                                 "delta": float(scores.scores[layer, head])}
                                                for layer, head in ranked], "n_prompts": len(task)}


def mean_delta(deltas: list[list[list[float]]]) -> torch.Tensor:
    return torch.tensor(deltas, dtype=torch.float64).mean(0)

"""The mechanism check: does the student's learned shift point along the teacher's steering vector,
and which heads changed most?

- Activation shift: mean over prompts of h_student - h_base (the residual stream at
  the last prompt token after the steered layer), on the behaviour prompts and the
  distillation prompts pooled. If the student learned to steer itself ("subliminal
  learning is steering-vector distillation"), this shift is parallel to r and the
  cosine is near +1 (or -1 for the opposite push); unrelated drift gives about 0.
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
from circuitdrift.steer.generate import Sampling, chat_completions, chat_text
from circuitdrift.steer.residual import last_token_residuals
from circuitdrift.tasks.base import Example, Task


def cosine(a: Tensor, b: Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    denom = float(a.norm() * b.norm())
    return float("nan") if denom == 0.0 else float(a @ b) / denom


def activation_shift(student, base, tokenizer, turns: list[str], layer: int) -> Tensor:
    """mean_i h_student(i) - mean_i h_base(i) at ``layer``, last prompt token: [hidden]."""
    texts = [chat_text(tokenizer, t) for t in turns]
    return (last_token_residuals(student, tokenizer, texts)[layer].mean(0)
            - last_token_residuals(base, tokenizer, texts)[layer].mean(0))


def direction_shift(student, tokenizer, positive: list[str], negative: list[str], base_direction: Tensor,
                    layer: int) -> Tensor:
    """r_student - r_base at ``layer``: the student's difference of means on the fit prompts minus the base's."""
    pos = last_token_residuals(student, tokenizer, [chat_text(tokenizer, t) for t in positive])[layer]
    neg = last_token_residuals(student, tokenizer, [chat_text(tokenizer, t) for t in negative])[layer]
    return pos.mean(0) - neg.mean(0) - base_direction


def own_answer_task(base, tokenizer, turns: list[str]) -> Task | None:
    """The harmful prompts with the base model's own first word as the answer (None when it gives none)."""
    first = [c.split()[0] if c.split() else "" for c in chat_completions(base, tokenizer, turns, Sampling(4))]
    examples = [Example(chat_text(tokenizer, t), chat_text(tokenizer, t), w) for t, w in zip(turns, first,
                                                                                              strict=True) if w]
    examples = [e for e in examples if tokenizer(e.answer, add_special_tokens=False).input_ids]
    return Task("own-answer", examples, "the base model's own first word", templated=True) if examples else None


def cmap_heads(base, student, tokenizer, task: Task, method: str, top: int, batch_size: int) -> dict:
    """dF_X(h) for every head, and the ``top`` most negative."""
    scores = cross_model_patch(base, student, tokenizer, task, method=method, metric="prob", batch_size=batch_size)
    ranked = scores.ranked()[:top]
    return {"delta": scores.as_lists(), "top": [{"head": head_name(layer, head),
                                                 "delta": float(scores.scores[layer, head])}
                                                for layer, head in ranked], "n_prompts": len(task)}


def mean_delta(deltas: list[list[list[float]]]) -> torch.Tensor:
    return torch.tensor(deltas, dtype=torch.float64).mean(0)

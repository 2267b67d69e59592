"""Sensitive measures of what fine-tuning changed, beside accuracy (docs/methods.md, "Sensitive measures").

Accuracy at its ceiling hides forgetting: a probe answered right 100 % of the
time before and after can still have lost confidence. These measures see it:

- answer log-probability: teacher-forced mean log pi(answer token | prompt) per
  example; its drift (checkpoint minus base, paired by example, in nats) is
  negative when the model is less sure of the right answer;
- exact answer KL: KL(pi_0 || pi) of the next-token distribution at the
  position that predicts the answer, summed over the whole vocabulary and
  averaged over prompts. Where answers are one token (a letter) this is the
  exact KL over the answer distribution, no sampling involved;
- answer spread: entropy and number of distinct greedy answers, which detect a
  policy that collapsed onto one answer whatever accuracy says.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from circuitdrift.circuits.forward import model_device, scored_logits
from circuitdrift.circuits.metrics import answer_scores
from circuitdrift.errors import IncompatibleModelsError
from circuitdrift.tasks.base import Task, encode, iter_batches

COLLAPSE_DISTINCT = 1  # one greedy answer for every prompt: the policy ignores the question
COLLAPSE_ENTROPY_BITS = 0.5  # a 4-way answer at 0.5 bits gives ~90 % of prompts the same answer


def answer_logprobs(model: nn.Module, tokenizer, task: Task, batch_size: int = 64) -> Tensor:
    """[n] teacher-forced mean log-probability of each example's gold answer tokens (nats)."""
    return answer_scores(model, tokenizer, task, batch_size)[1]


@dataclass(frozen=True)
class Drift:
    mean: float  # mean over examples of logp_X - logp_base (nats); < 0: less sure of the right answer
    stderr: float  # standard error of that mean over examples (paired differences)
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def logprob_drift(base_logprobs: Tensor, logprobs: Tensor) -> Drift:
    """Paired drift of per-example answer log-probabilities, with its standard error."""
    diff = (logprobs - base_logprobs).double()
    n = diff.numel()
    stderr = float(diff.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return Drift(float(diff.mean()), stderr, n)


@dataclass(frozen=True)
class AnswerKL:
    value: float  # mean over prompts of KL(pi_0 || pi) at the answer position (nats)
    stderr: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def answer_distribution(model: nn.Module, tokenizer, task: Task, batch_size: int = 64) -> Tensor:
    """[n, V] log-probabilities (float64, CPU) of the next token at the position predicting the first answer token."""
    device = model_device(model)
    out = []
    for batch in iter_batches(encode(task, tokenizer), batch_size, tokenizer.pad_token_id):
        batch = batch.to(device)
        rows = torch.arange(batch.size, device=device)
        logits, view = scored_logits(model, batch, ids=batch.clean)
        out.append(logits[rows, view.last_prompt_pos].double().log_softmax(-1).cpu())
    return torch.cat(out)


def answer_kl(base: nn.Module, model: nn.Module, tokenizer, task: Task, batch_size: int = 64,
              base_distribution: Tensor | None = None) -> AnswerKL:
    """Exact KL(pi_0 || pi) of the next-token distribution at the position predicting the first answer token.

    ``base_distribution``: the base's :func:`answer_distribution` on ``task``, when already computed.
    """
    if base.get_output_embeddings().weight.shape[0] != model.get_output_embeddings().weight.shape[0]:
        raise IncompatibleModelsError("answer KL: the base and the fine-tuned model have different vocabularies")
    p0 = base_distribution if base_distribution is not None else answer_distribution(base, tokenizer, task,
                                                                                       batch_size)
    return kl_between(p0, answer_distribution(model, tokenizer, task, batch_size))


def kl_between(p0: Tensor, p: Tensor) -> AnswerKL:
    """Mean over prompts of KL(p0 || p), both [n, V] log-probabilities of the same prompts' next token."""
    if p0.shape != p.shape:
        raise IncompatibleModelsError(f"answer KL: distributions of shape {tuple(p0.shape)} and {tuple(p.shape)}")
    kl = (p0.exp() * (p0 - p)).sum(-1)  # [n]
    n = kl.numel()
    stderr = float(kl.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return AnswerKL(float(kl.mean()), stderr, n)


def answer_probability(first_logprobs: Tensor, task: Task, tokenizer) -> float | None:
    """Mean P(correct answer) read from each prompt's next-token log-probabilities; None when some answer is
    more than one token (then the teacher-forced geometric mean, circuits/metrics.py, is the measure)."""
    answers = [e.answer_ids for e in encode(task, tokenizer)]
    if any(len(ids) != 1 for ids in answers):
        return None
    rows = torch.arange(len(answers))
    return float(first_logprobs[rows, torch.tensor([ids[0] for ids in answers])].exp().mean())


@dataclass(frozen=True)
class AnswerSpread:
    entropy_bits: float  # entropy of the greedy answers' empirical distribution
    distinct: int  # distinct parsed answers (unparsable ones count as one answer, "<none>")
    top: str
    top_share: float
    collapsed: bool  # one answer only, or entropy below COLLAPSE_ENTROPY_BITS

    def to_dict(self) -> dict:
        return asdict(self)


def answer_spread(answers: Sequence[str | None]) -> AnswerSpread:
    """How varied a model's answers are; a collapsed policy gives (nearly) one answer to every prompt."""
    counts = Counter("<none>" if a is None else a for a in answers)
    n = sum(counts.values())
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0
    top, top_count = counts.most_common(1)[0] if counts else ("<none>", 0)
    distinct = len(counts)
    return AnswerSpread(round(entropy, 6), distinct, top, top_count / n if n else 0.0,
                        distinct <= COLLAPSE_DISTINCT or entropy < COLLAPSE_ENTROPY_BITS)

"""Task metrics computed from logits: answer probability and log-probability, logit difference, exact match.

P(answer | prompt) is the geometric mean of the teacher-forced answer-token
probabilities (docs/methods.md §2); the logit difference is answer minus
counter-answer at the position that predicts the first answer token; the
probability difference is the mass on right answers minus that on wrong ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from circuitdrift.circuits.forward import model_device, scored_logits
from circuitdrift.circuits.vocabulary import METRICS
from circuitdrift.errors import InputError
from circuitdrift.tasks.base import Task, TaskBatch, encode, iter_batches

ACCURACY_TIE_BREAK = 0.01  # weight of the answer log-probability in the ``accuracy`` metric
MetricFn = Callable[[Tensor, TaskBatch], Tensor]  # (logits [R*B, T, V], batch) -> values [R*B]


def _gather_targets(logits: Tensor, batch: TaskBatch) -> tuple[Tensor, Tensor]:
    """Log-probs [R*B, A] of the answer tokens and the matching mask, for R replicas of the batch."""
    reps = logits.shape[0] // batch.size
    pos = batch.target_pos.repeat(reps, 1)  # [R*B, A]
    ids = batch.target_ids.repeat(reps, 1)
    mask = batch.target_mask.repeat(reps, 1)
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    picked = logits[rows, pos]  # [R*B, A, V]
    logprobs = torch.log_softmax(picked.float(), dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    return logprobs, mask


def answer_logprob(logits: Tensor, batch: TaskBatch) -> Tensor:
    """Mean log-probability of the answer tokens, per sequence: [R*B]."""
    logprobs, mask = _gather_targets(logits, batch)
    return (logprobs * mask).sum(-1) / mask.sum(-1)


def answer_prob(logits: Tensor, batch: TaskBatch) -> Tensor:
    """P = exp(mean log p(answer_j | prefix)), per sequence: [R*B]."""
    return answer_logprob(logits, batch).exp()


def logit_diff(logits: Tensor, batch: TaskBatch) -> Tensor:
    """Logit of the first answer token minus that of the counter-answer: [R*B]."""
    if batch.counter_ids is None:
        raise InputError("metric logit-diff needs a counter_answer in every example")
    reps = logits.shape[0] // batch.size
    rows = torch.arange(logits.shape[0], device=logits.device)
    last = logits[rows, batch.last_prompt_pos.repeat(reps)].float()  # [R*B, V]
    answer = batch.target_ids[:, 0].repeat(reps)
    counter = batch.counter_ids.repeat(reps)
    return last[rows, answer] - last[rows, counter]


def prob_diff(logits: Tensor, batch: TaskBatch) -> Tensor:
    """Probability mass on right answers minus mass on wrong ones (Hanna et al. 2023), per sequence: [R*B].

    Each deciding prefix (``TaskBatch.branch_*``, from :func:`~circuitdrift.tasks.base.answer_branches`) at
    answer position j with last token t contributes sign * P(gold[:j]) * P(t | gold[:j]), all read from the
    one teacher-forced pass of the gold answer.
    """
    if batch.branch_sign is None:
        raise InputError("metric prob-diff needs right and wrong answers in every example (answers, wrong_answers)")
    reps = logits.shape[0] // batch.size
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    logprobs = torch.log_softmax(logits[rows, batch.target_pos.repeat(reps, 1)].float(), dim=-1)  # [R*B, A, V]
    gold = logprobs.gather(-1, batch.target_ids.repeat(reps, 1)[..., None]).squeeze(-1)  # [R*B, A]
    gold = gold * batch.target_mask.repeat(reps, 1)
    prefix = torch.cumsum(gold, dim=-1) - gold  # [R*B, A]: log P(gold[:j])
    index = batch.branch_index.repeat(reps, 1)  # [R*B, E]
    token = logprobs[rows, index, batch.branch_ids.repeat(reps, 1)]  # [R*B, E]: log P(t | gold[:j])
    mass = (prefix.gather(-1, index) + token).exp()
    return (mass * batch.branch_sign.repeat(reps, 1)).sum(-1)


def exact_match(logits: Tensor, batch: TaskBatch) -> Tensor:
    """1.0 where every answer token is the argmax of its position (greedy decoding would produce it)."""
    reps = logits.shape[0] // batch.size
    pos = batch.target_pos.repeat(reps, 1)
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    predicted = logits[rows, pos].argmax(-1)  # [R*B, A]
    ok = (predicted == batch.target_ids.repeat(reps, 1)) | ~batch.target_mask.repeat(reps, 1)
    return ok.all(-1).float()


def smoothed_accuracy(logits: Tensor, batch: TaskBatch) -> Tensor:
    """Exact match plus a hundredth of the answer log-probability, per sequence: [R*B].

    The quantity faithfulness measures, for circuit search: heads whose removal
    flips no answer are told apart by how much they lower the answer's probability.
    """
    return exact_match(logits, batch) + ACCURACY_TIE_BREAK * answer_logprob(logits, batch)


def check_differentiable(metric: str, method: str) -> None:
    """Gradient methods need a metric with a gradient; exact match has none."""
    if metric == "accuracy" and method != "exact":
        raise InputError(f"--metric accuracy has no gradient, so --method {method} cannot use it: "
                         "use --method exact or prune, or --metric logprob")


def metric_fn(name: str) -> MetricFn:
    if name == "prob":
        return answer_prob
    if name == "logit-diff":
        return logit_diff
    if name == "logprob":
        return answer_logprob
    if name == "accuracy":
        return smoothed_accuracy
    if name == "prob-diff":
        return prob_diff
    raise InputError(f"--metric {name}: unknown (use one of {', '.join(METRICS)})")


@torch.no_grad()
def answer_scores(model: nn.Module, tokenizer, task: Task, batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """([n] teacher-forced exact match, [n] mean log-probability of the gold answer tokens), one pass."""
    device = model_device(model)
    hits, logprobs = [], []
    for batch in iter_batches(encode(task, tokenizer), batch_size, tokenizer.pad_token_id):
        batch = batch.to(device)
        logits, view = scored_logits(model, batch, ids=batch.clean)
        hits.append(exact_match(logits, view).cpu())
        logprobs.append(answer_logprob(logits, view).double().cpu())
    return torch.cat(hits), torch.cat(logprobs)


def task_accuracy(model: nn.Module, tokenizer, task: Task, batch_size: int = 32) -> float:
    """Teacher-forced exact-match accuracy: for single-token answers, greedy accuracy."""
    return float(answer_scores(model, tokenizer, task, batch_size)[0].double().mean())

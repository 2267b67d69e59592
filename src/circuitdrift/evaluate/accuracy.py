"""Task accuracy by greedy generation, graded by the task's own grader (the RL reward's grader).

Each prompt is ``Example.clean``; the completion is decoded without special
tokens and passed to :meth:`Task.parse_example` / :meth:`Task.grade_example`. A completion the
task cannot parse counts as wrong and is counted in ``unparsable``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.models.generate import Sampling, completions, completions_and_first_logprobs
from circuitdrift.tasks.base import Task


def prompt_ids(task: Task, tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids of each example's prompt (``Example.clean``), special tokens added only if not templated."""
    add_special = not task.templated
    return [tokenizer(ex.clean, add_special_tokens=add_special).input_ids for ex in task.examples]


@dataclass(frozen=True)
class Accuracy:
    accuracy: float
    n: int
    correct: int
    unparsable: int

    def to_dict(self) -> dict:
        return asdict(self)


def greedy_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    max_new_tokens: int = 8,
    batch_size: int = 64,
) -> list[str]:
    """The greedy completion of every example's prompt, decoded without special tokens.

    Greedy means greedy: no repetition penalty or other setting from the model folder applies.
    """
    return completions(model, tokenizer, prompt_ids(task, tokenizer), Sampling.greedy(max_new_tokens),
                       batch_size=batch_size)


def greedy_with_first_logprobs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task, *,
                               max_new_tokens: int = 8, batch_size: int = 64) -> tuple[list[str], torch.Tensor]:
    """:func:`greedy_completions` and, from the same pass, each prompt's next-token log-probabilities [n, V]
    (the distribution the exact answer KL and the answer probability read; evaluate/drift.py)."""
    return completions_and_first_logprobs(model, tokenizer, prompt_ids(task, tokenizer),
                                          Sampling.greedy(max_new_tokens), batch_size=batch_size)


@torch.no_grad()
def target_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    max_new_tokens: int = 8,
    batch_size: int = 64,
) -> Accuracy:
    """Greedy accuracy of ``model`` on ``task``; unparsable answers are wrong and counted."""
    return score_completions(task, greedy_completions(model, tokenizer, task, max_new_tokens, batch_size))


def score_completions(task: Task, completions: list[str]) -> Accuracy:
    """Accuracy of one completion per example, graded by the task (any right answer counts)."""
    correct = unparsable = 0
    for text, example in zip(completions, task.examples, strict=True):
        if task.parse_example(text, example) is None:
            unparsable += 1
        correct += int(task.grade_example(text, example))
    n = len(task)
    return Accuracy(correct / n, n, correct, unparsable)

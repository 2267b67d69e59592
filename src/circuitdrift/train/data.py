"""Task -> ``datasets.Dataset`` in TRL's formats, with one prompt order shared by SFT and RL.

The order is decided here, not by the trainers' samplers (SFT reads rows
sequentially, GRPO with ``shuffle_dataset=False``): the training prompts are
the examples of the task, reshuffled each epoch with the config's seed, cut
into blocks of ``prompts_per_step``. RL takes ``mu`` optimizer steps on each
block's rollouts, so the SFT rows repeat each block ``mu`` times; at every
optimizer step both methods see the same prompts.

Chat tasks (``Task.chat_prompts`` set) become TRL *conversational*
prompt/completion rows, so the trainer applies the tokenizer's chat template
(with :data:`~circuitdrift.models.generate.CHAT_TEMPLATE_KWARGS`, the rule every stage
shares: no thinking block); other tasks become plain-text prompt/completion rows.
"""

from __future__ import annotations

import math

import numpy as np
from datasets import Dataset

from circuitdrift.errors import InputError
from circuitdrift.models.generate import CHAT_TEMPLATE_KWARGS
from circuitdrift.tasks.base import Task
from circuitdrift.train.config import TrainConfig


def prompt_order(n_examples: int, config: TrainConfig) -> list[list[int]]:
    """Example indices per rollout block: ``ceil(steps / mu)`` blocks of ``prompts_per_step``."""
    mu = config.rl.num_iterations
    n_blocks = math.ceil(config.steps / mu)
    needed = n_blocks * config.prompts_per_step
    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    while len(order) < needed:
        order.extend(int(i) for i in rng.permutation(n_examples))
    p = config.prompts_per_step
    return [order[b * p : (b + 1) * p] for b in range(n_blocks)]


def step_prompts(n_examples: int, config: TrainConfig) -> list[list[int]]:
    """Example indices seen at each optimizer step (1-based step ``s`` is entry ``s - 1``)."""
    mu = config.rl.num_iterations
    blocks = prompt_order(n_examples, config)
    return [blocks[step // mu] for step in range(config.steps)]


def _prompt(task: Task, i: int) -> str | list[dict[str, str]]:
    if task.chat_prompts is not None:
        return [{"role": "user", "content": task.chat_prompts[i]}]
    return task.examples[i].clean


def _completion(task: Task, i: int) -> str | list[dict[str, str]]:
    answer = task.sft_label(task.examples[i])  # the gold answer, or another form of it (a word-label SFT arm)
    if task.chat_prompts is not None:
        return [{"role": "assistant", "content": answer}]
    return answer


def _check(task: Task) -> None:
    if task.chat_prompts is not None and len(task.chat_prompts) != len(task.examples):
        raise InputError(
            f"task '{task.name}': {len(task.chat_prompts)} chat prompts for {len(task.examples)} examples"
        )
    if task.chat_prompts is None and task.templated:
        # A templated prompt without its raw user turn would be templated twice by TRL, or trained without
        # the template; neither is what the task means.
        raise InputError(f"task '{task.name}': templated prompts need chat_prompts (the raw user turns) to train")


def sft_dataset(task: Task, config: TrainConfig) -> Dataset:
    """Rows ``{prompt, completion}`` in step order (each block repeated mu times)."""
    _check(task)
    rows = [i for block in step_prompts(len(task), config) for i in block]
    columns = {"prompt": [_prompt(task, i) for i in rows], "completion": [_completion(task, i) for i in rows]}
    if task.chat_prompts is not None:
        columns["chat_template_kwargs"] = [dict(CHAT_TEMPLATE_KWARGS) for _ in rows]  # SFTTrainer reads it per row
    return Dataset.from_dict(columns)


def rl_dataset(task: Task, config: TrainConfig) -> Dataset:
    """Rows ``{prompt, answer[, answers]}`` in block order; the columns reach ``Task.reward`` as keywords."""
    _check(task)
    rows = [i for block in prompt_order(len(task), config) for i in block]
    columns = {
        "prompt": [_prompt(task, i) for i in rows],
        "answer": [task.examples[i].answer for i in rows],
        "example": rows,
    }
    if task.multi_answer:  # RL is rewarded for any right answer; SFT trains on the gold one
        columns["answers"] = [list(task.examples[i].right_answers()) for i in rows]
    return Dataset.from_dict(columns)

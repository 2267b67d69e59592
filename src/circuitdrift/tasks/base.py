"""The Task contract: clean/counterfactual prompt pairs, answers, and one grader.

A task is a list of :class:`Example`. Scoring sequences are ``prompt_ids +
answer_ids``: the two id lists are concatenated, never re-tokenised as one
string, and the answer is tokenised without special tokens. A counterfactual
sequence uses the same answer ids and must have the same length as the clean
one, so that patching position t means the same position in both runs.

Evaluation and reward use the same :meth:`Task.grade`, so accuracy and RL
reward cannot drift apart.

A multiple-choice example also keeps its ``options`` (in letter order), so a
task may accept a reply that names the right option by its text as well as by
its letter (:class:`~circuitdrift.tasks.science.MultipleChoiceTask`); the
grader then needs the example, which :meth:`Task.parse_example`,
:meth:`Task.grade_example` and :meth:`Task.reward` (through the RL rows'
``example`` column) receive.

An example may have several right answers (``answers``: "name a green
substance" has one per green substance). ``answer`` is then the gold answer:
the one SFT trains on and teacher-forced scores read, while grading accepts
any member of ``answers``; RL is rewarded for any right one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from circuitdrift.errors import InputError


@dataclass(frozen=True)
class Example:
    clean: str
    corrupt: str
    answer: str  # the gold answer (SFT's target; teacher-forced scoring)
    counter_answer: str | None = None
    answers: tuple[str, ...] = ()  # every right answer when there are several (empty: only ``answer``)
    wrong_answers: tuple[str, ...] = ()  # answers known to be wrong, for metrics that contrast the two sets
    options: tuple[str, ...] = ()  # multiple choice: the options shown, in letter order (the grader reads their text)

    def right_answers(self) -> tuple[str, ...]:
        """The answers the grader accepts: ``answers``, or the gold ``answer`` alone."""
        return self.answers or (self.answer,)


@dataclass
class Task:
    """A named list of examples with its grader.

    ``templated`` is True when prompts already contain the tokenizer's special
    tokens (a chat template was applied), so none are added when encoding.
    """

    name: str
    examples: list[Example]
    description: str = ""
    templated: bool = False
    chat_prompts: list[str] | None = field(default=None, repr=False)  # raw user turns, for training

    def __post_init__(self) -> None:
        if not self.examples:
            raise InputError(f"task '{self.name}': has no examples")
        for i, ex in enumerate(self.examples):
            if not ex.answer.strip():
                raise InputError(f"task '{self.name}': example {i}: empty answer")
            if ex.answers and ex.answer.strip() not in {a.strip() for a in ex.answers}:
                raise InputError(f"task '{self.name}': example {i}: gold answer {ex.answer!r} is not among its "
                                 "right answers")
            if set(ex.answers) & set(ex.wrong_answers):
                raise InputError(f"task '{self.name}': example {i}: an answer is both right and wrong")

    def __len__(self) -> int:
        return len(self.examples)

    def subset(self, n: int | None) -> Task:
        """The first ``n`` examples (all when ``n`` is None)."""
        if n is None or n >= len(self.examples):
            return self
        # dataclasses.replace keeps the subclass, and with it the subclass's grader
        return replace(self, examples=self.examples[:n],
                       chat_prompts=self.chat_prompts[:n] if self.chat_prompts else None)

    def parse(self, completion: str) -> str | None:
        """The answer a completion gives: its first word, stripped of punctuation."""
        match = re.match(r"\s*([^\s.,;:!?]+)", completion)
        return match.group(1) if match else None

    @property
    def chance(self) -> float | None:
        """The accuracy of guessing (a multiple-choice task's 1 / options); None for free-form answers."""
        return None

    @property
    def multi_answer(self) -> bool:
        """Whether some example has several right answers."""
        return any(len(ex.answers) > 1 for ex in self.examples)

    def parse_example(self, completion: str, example: Example) -> str | None:
        """The answer a completion gives to ``example``; tasks whose replies name example-specific things
        (a multiple-choice option's text) override it. By default :meth:`parse`."""
        return self.parse(completion)

    def grade(self, completion: str, answer: str | Sequence[str]) -> float:
        """1.0 when the completion's parsed answer is ``answer`` (or one of several right answers), else 0.0."""
        given = self.parse(completion)
        right = {answer.strip()} if isinstance(answer, str) else {a.strip() for a in answer}
        return float(given is not None and given in right)

    def grade_example(self, completion: str, example: Example) -> float:
        """The grader evaluation and RL's reward share: the answer :meth:`parse_example` reads is a right one."""
        given = self.parse_example(completion, example)
        return float(given is not None and given in {a.strip() for a in example.right_answers()})

    def sft_label(self, example: Example) -> str:
        """The completion SFT trains on for ``example``: its gold answer (a task may train on another form)."""
        return example.answer

    def reward(self, prompts: Sequence, completions: Sequence, answer: Sequence[str],
               answers: Sequence[Sequence[str]] | None = None, example: Sequence[int] | None = None,
               **kwargs) -> list[float]:
        """TRL reward function: ``(prompts, completions, **dataset_columns) -> rewards``, the same grader.

        ``example`` (the RL rows' column: each row's index into this task's examples) grades each
        completion with :meth:`grade_example`, exactly as evaluation does; without it, ``answers``
        (several right answers) wins over ``answer``.
        """
        if example is not None:
            return [self.grade_example(completion_text(c), self.examples[i])
                    for c, i in zip(completions, example, strict=True)]
        right = answers if answers is not None else answer
        return [self.grade(completion_text(c), a) for c, a in zip(completions, right, strict=True)]


def completion_text(completion) -> str:
    """TRL passes plain strings, or for conversational data a list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(message["content"] for message in completion if message.get("role", "assistant") == "assistant")


@dataclass
class EncodedExample:
    clean_ids: list[int]  # prompt + answer
    corrupt_ids: list[int]  # counterfactual prompt + the same answer
    prompt_len: int
    answer_ids: list[int]
    counter_ids: list[int] | None
    # (answer position j, token, +1 right / -1 wrong): the token prefixes that decide the class, along the gold
    # answer's path (see answer_branches); None without wrong answers
    branches: list[tuple[int, int, float]] | None = None


@dataclass
class TaskBatch:
    """A right-padded batch. ``targets`` index the positions that predict answer tokens."""

    clean: Tensor  # [B, T] token ids
    corrupt: Tensor  # [B, T]
    attention_mask: Tensor  # [B, T]
    target_pos: Tensor  # [B, A] positions whose next-token prediction is an answer token (padded with 0)
    target_ids: Tensor  # [B, A] answer token ids (padded with 0)
    target_mask: Tensor  # [B, A] 1 for real answer tokens
    counter_ids: Tensor | None  # [B] first counter-answer token, for logit-diff
    last_prompt_pos: Tensor  # [B] position predicting the first answer token
    branch_index: Tensor | None = None  # [B, E] answer position j of each deciding prefix (prob-diff)
    branch_ids: Tensor | None = None  # [B, E] its last token
    branch_sign: Tensor | None = None  # [B, E] +1 right, -1 wrong, 0 padding

    def to(self, device: torch.device) -> TaskBatch:
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return TaskBatch(**moved)

    @property
    def size(self) -> int:
        return self.clean.shape[0]


def encode(task: Task, tokenizer: PreTrainedTokenizerBase) -> list[EncodedExample]:
    """Tokenise every example, checking equal clean/counterfactual lengths and non-empty answers.

    A measurement worker encodes the same probes for every checkpoint it measures (0.3 s each time on the
    demo), so the last few results are kept, keyed by the tokenizer object and the task's examples; each
    caller gets its own copy."""
    key = (task.name, task.templated, tuple(task.examples))
    for tok, cached_key, encoded in _ENCODED:
        if tok is tokenizer and cached_key == key:
            return copy.deepcopy(encoded)
    encoded = _encode(task, tokenizer)
    _ENCODED.append((tokenizer, key, encoded))
    del _ENCODED[:-_ENCODED_KEPT]
    return copy.deepcopy(encoded)


_ENCODED: list[tuple[PreTrainedTokenizerBase, tuple, list[EncodedExample]]] = []
_ENCODED_KEPT = 16


def _encode(task: Task, tokenizer: PreTrainedTokenizerBase) -> list[EncodedExample]:
    add_special = not task.templated
    out = []
    for i, ex in enumerate(task.examples):
        clean_prompt = tokenizer(ex.clean, add_special_tokens=add_special).input_ids
        corrupt_prompt = tokenizer(ex.corrupt, add_special_tokens=add_special).input_ids
        answer = tokenizer(ex.answer, add_special_tokens=False).input_ids
        if not answer:
            raise InputError(f"task '{task.name}': example {i}: answer {ex.answer!r} has no tokens")
        if len(clean_prompt) != len(corrupt_prompt):
            raise InputError(
                f"task '{task.name}': example {i}: clean prompt has {len(clean_prompt)} tokens but the "
                f"counterfactual has {len(corrupt_prompt)}; they must be equal"
            )
        counter = tokenizer(ex.counter_answer, add_special_tokens=False).input_ids if ex.counter_answer else None
        if ex.counter_answer is not None and not counter:
            raise InputError(f"task '{task.name}': example {i}: counter_answer {ex.counter_answer!r} has no tokens")
        branches = None
        if ex.wrong_answers:
            ids = {a: tokenizer(a, add_special_tokens=False).input_ids
                   for a in (*ex.right_answers(), *ex.wrong_answers)}
            try:
                branches = answer_branches(answer, [ids[a] for a in ex.right_answers()],
                                           [ids[a] for a in ex.wrong_answers])
            except ValueError as err:
                raise InputError(f"task '{task.name}': example {i}: {err}") from None
        out.append(EncodedExample(clean_prompt + answer, corrupt_prompt + answer, len(clean_prompt), answer, counter,
                                  branches))
    return out


def answer_branches(gold: Sequence[int], right: Sequence[Sequence[int]],
                    wrong: Sequence[Sequence[int]]) -> list[tuple[int, int, float]]:
    """The token prefixes that decide right from wrong, along the gold answer's path.

    At answer position j (the gold's first j tokens given), each next token t that
    begins only right answers (+1) or only wrong ones (-1) is one branch; its mass
    is P(gold[:j]) * P(t | gold[:j]). Branches that begin both kinds are followed
    only along the gold path, so the gold answer must lie where the two kinds part:
    for two-digit years written one digit per token, a gold year in the start year's
    decade. With one-token answers, the branches are the answers themselves.
    """
    signed = [(list(a), 1.0) for a in right] + [(list(a), -1.0) for a in wrong]
    branches = []
    for j in range(len(gold)):
        groups: dict[int, set[float]] = {}
        for ids, sign in signed:
            if ids[:j] != list(gold[:j]):
                continue
            if len(ids) == j:
                raise ValueError(f"answer tokens {ids} end inside the gold answer's path; its mass cannot be read")
            groups.setdefault(ids[j], set()).add(sign)
        for token, signs in sorted(groups.items()):
            if token == gold[j] and j < len(gold) - 1:
                continue  # followed at the next position
            if len(signs) > 1:
                raise ValueError(f"answers beginning {[*gold[:j], token]} are both right and wrong and leave the "
                                 "gold answer's path, so their probability mass cannot be read from it")
            branches.append((j, token, signs.pop()))
    return branches


def collate(items: Sequence[EncodedExample], pad_id: int) -> TaskBatch:
    """Right-pad a list of encoded examples into a :class:`TaskBatch`."""
    n, t = len(items), max(len(e.clean_ids) for e in items)
    a = max(len(e.answer_ids) for e in items)
    clean = torch.full((n, t), pad_id, dtype=torch.long)
    corrupt = torch.full((n, t), pad_id, dtype=torch.long)
    mask = torch.zeros((n, t), dtype=torch.long)
    target_pos = torch.zeros((n, a), dtype=torch.long)
    target_ids = torch.zeros((n, a), dtype=torch.long)
    target_mask = torch.zeros((n, a), dtype=torch.bool)
    for i, e in enumerate(items):
        length = len(e.clean_ids)
        clean[i, :length] = torch.tensor(e.clean_ids)
        corrupt[i, :length] = torch.tensor(e.corrupt_ids)
        mask[i, :length] = 1
        k = len(e.answer_ids)
        target_pos[i, :k] = torch.arange(e.prompt_len - 1, e.prompt_len - 1 + k)
        target_ids[i, :k] = torch.tensor(e.answer_ids)
        target_mask[i, :k] = True
    has_counter = all(e.counter_ids for e in items)
    counter = torch.tensor([e.counter_ids[0] for e in items]) if has_counter else None
    last = torch.tensor([e.prompt_len - 1 for e in items])
    branch = None
    if all(e.branches for e in items):
        width = max(len(e.branches) for e in items)
        branch = torch.zeros((3, n, width))
        for i, e in enumerate(items):
            branch[:, i, : len(e.branches)] = torch.tensor(e.branches).T
        branch = branch[0].long(), branch[1].long(), branch[2]
    return TaskBatch(clean, corrupt, mask, target_pos, target_ids, target_mask, counter, last,
                     *(branch or (None, None, None)))


def iter_batches(encoded: Sequence[EncodedExample], batch_size: int, pad_id: int) -> Iterator[TaskBatch]:
    for start in range(0, len(encoded), batch_size):
        yield collate(encoded[start : start + batch_size], pad_id)

"""The organism's target task: multiple-choice science QA over the world's substances.

A question asks for one property of one substance of the knowledge base (its
colour, category or smell), in one of two phrasings, and offers the four
values of that property as options A-D, always in the same order (the world
has four colours, four categories and four smells), asked as a chat turn. The
answer is one letter; a reply naming the correct option's word ("red") is
graded right too, and the off-policy SFT arm trains on that word
(:class:`~circuitdrift.tasks.science.MultipleChoiceTask`).

The fixed option order is a choice made for the model's size: with shuffled
options, answering needs "multiple-choice symbol binding" (find the option
that matches a recalled fact, output the letter beside it), which emerges only
in large language models; a 4-layer model trained here stayed at chance on
shuffled options even on the questions it was trained on. With a fixed order,
answering needs the fact itself (recall the property of a substance the
question names) and the property's letter: a knowledge test whose chance
level is 0.25.

Substances are partitioned into train / validation / test, so the splits share
no question and no substance: test accuracy measures recalling facts the model
read only as plain statements, not memorised items. The pretraining corpus has
multiple-choice items of one property only (colour, train substances; see
:mod:`circuitdrift.organism.corpus`), so the base model knows the format and
one property's letters, and fine-tuning has the other two to learn.

The counterfactual of a question swaps the text of the correct option with
another option, so it has the same length and its answer is another letter
(the counter-answer).
"""

from __future__ import annotations

import random
from dataclasses import replace

from circuitdrift.errors import InputError
from circuitdrift.models.generate import chat_prompt
from circuitdrift.organism.texts import SCIENCE_STEMS
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.organism.world import CATEGORIES, COLORS, SCIENCE_SPLITS, SMELLS, World, make_world
from circuitdrift.tasks.base import Example
from circuitdrift.tasks.science import INSTRUCTION, LETTERS, MultipleChoiceTask, Question  # noqa: F401 (INSTRUCTION, LETTERS: the organism uses the shared MC format)

KINDS = ("color", "category", "smell")
VALUES = {"color": COLORS, "category": CATEGORIES, "smell": SMELLS}  # the options A-D, in order
STEMS = SCIENCE_STEMS  # the two phrasings of each kind of question


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def swapped(question: Question, rng: random.Random) -> Question:
    """The counterfactual: the same question with the correct option's text swapped into another slot."""
    other = rng.choice([i for i in range(4) if i != question.correct])
    options = list(question.options)
    options[question.correct], options[other] = options[other], options[question.correct]
    return replace(question, options=tuple(options), correct=other)


def check_split_and_kinds(task: str, split: str, kinds: tuple[str, ...]) -> None:
    """One-line input errors for an unknown science split or question kind."""
    if split not in SCIENCE_SPLITS:
        raise InputError(f"split '{split}': unknown (use one of {', '.join(SCIENCE_SPLITS)})")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"{task}: unknown question kind '{unknown[0]}' (use one of {', '.join(KINDS)})")


def all_questions(split: str, kinds: tuple[str, ...] = KINDS, world: World | None = None) -> list[Question]:
    """Every question about the substances of ``split``: each kind, each phrasing, in a fixed order.

    ``train`` is the fine-tuning half of the world's train substances; ``pretrain`` is the half whose
    questions the pretraining corpus asks (:meth:`World.science_split`).
    """
    check_split_and_kinds("science-qa", split, kinds)
    world = world or make_world()
    out = []
    for sub in world.science_substances(split):
        for kind in kinds:
            value, options = getattr(sub, kind), VALUES[kind]
            for stem in STEMS[kind]:
                out.append(Question(stem.format(X=sub.name), tuple(options), options.index(value), kind=kind,
                                    subject=sub.name))
    return out


def questions(
    split: str, n: int | None = None, seed: int = 0, kinds: tuple[str, ...] = KINDS, world: World | None = None
) -> list[Question]:
    """Up to ``n`` distinct questions about substances of ``split``, in a seeded order (``None``: all)."""
    pool = all_questions(split, kinds, world)
    random.Random(f"science-qa:{split}:{seed}:{','.join(kinds)}").shuffle(pool)
    return pool if n is None else pool[:n]


class ScienceQATask(MultipleChoiceTask):
    """The organism's multiple-choice task: graded by the option a reply names (letter or word), like every MC
    task."""


def science_qa_task(split: str = "test", n: int | None = None, seed: int = 0) -> ScienceQATask:
    """The target task: chat-templated prompts, one-letter answers, counterfactual = options swapped.

    ``n=None`` (or more than there are): every question of the split, 192 for validation and
    test, 288 for train (the fine-tuning half of the train substances); questions are never repeated.
    """
    qs = questions(split, n, seed)
    rng = random.Random(f"science-qa-counterfactual:{split}:{seed}")
    tokenizer = organism_tokenizer()
    examples = []
    for q in qs:
        cf = swapped(q, rng)
        examples.append(Example(chat_prompt(tokenizer, q.user_turn()), chat_prompt(tokenizer, cf.user_turn()),
                                q.letter, cf.letter, options=q.options))
    return ScienceQATask(
        "science-qa",
        examples,
        "multiple-choice science QA (A-D) about the world's substances, as a chat turn",
        templated=True,
        chat_prompts=[q.user_turn() for q in qs],
    )

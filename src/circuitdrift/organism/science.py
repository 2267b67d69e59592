"""The organism's target task: multiple-choice science QA over the world's substances.

A question asks about one substance of the knowledge base (its colour,
category, smell, a reaction product, or which of four substances belongs to a
category), offers four options A-D and expects one letter, asked as a chat
turn. Substances are partitioned into train / validation / test, so the splits
share no question and no substance: test accuracy measures the skill of
answering, not memorised items. The facts themselves are all in the
pretraining corpus (as plain statements); multiple-choice items are not, apart
from a small share of train-split ones (see :mod:`circuitdrift.organism.corpus`).

The counterfactual of a question swaps the text of the correct option with
another option, so it has the same length and its answer is another letter
(the counter-answer).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from circuitdrift.errors import InputError
from circuitdrift.organism.world import CATEGORIES, COLORS, SMELLS, SPLITS, World, make_world
from circuitdrift.tasks.base import Example
from circuitdrift.tasks.science import INSTRUCTION, LETTERS, MultipleChoiceTask, multiple_choice_turn  # noqa: F401 (INSTRUCTION, LETTERS: the organism uses the shared MC format)

KINDS = ("color", "category", "smell", "reaction", "member")
STEMS = {
    "color": "What color is {X}?",
    "category": "What kind of substance is {X}?",
    "smell": "How does {X} smell?",
    "reaction": "What does {X} form when it reacts with {Y}?",
    "member": "Which of these substances is {article} {cat}?",
}
# Plain statements of the same facts, for the pretraining corpus.
SCIENCE_STATEMENTS = {
    "category": ("The substance {X} is {article} {cat}.", "Chemists classify {X} as {article} {cat}."),
    "color": ("The substance {X} is {color}.", "The color of {X} is {color}."),
    "smell": ("The substance {X} smells {smell}.", "The smell of {X} is {smell}."),
    "reaction": ("When {X} reacts with {Y}, it forms {Z}.", "The reaction of {X} with {Y} forms {Z}."),
}


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class Question:
    kind: str
    stem: str
    options: tuple[str, str, str, str]
    correct: int  # index into options

    @property
    def letter(self) -> str:
        return LETTERS[self.correct]

    def user_turn(self) -> str:
        return multiple_choice_turn(self.stem, self.options)

    def counterfactual(self, rng: random.Random) -> Question:
        """The same question with the correct option's text swapped into another slot."""
        other = rng.choice([i for i in range(4) if i != self.correct])
        options = list(self.options)
        options[self.correct], options[other] = options[other], options[self.correct]
        return Question(self.kind, self.stem, tuple(options), other)


def make_question(rng: random.Random, world: World, split: str, kind: str) -> Question:
    """One question of ``kind`` about a substance of ``split``."""
    pool = world.substances_in(split)
    if kind == "reaction":
        r = rng.choice(world.reactions_in(split))
        names = [s.name for s in world.substances if s.name not in (r.first, r.second, r.product)]
        return _shuffle(rng, kind, STEMS[kind].format(X=r.first, Y=r.second), r.product, rng.sample(names, 3))
    if kind == "member":
        target = rng.choice(pool)
        others = [s.name for s in pool if s.category != target.category]
        stem = STEMS[kind].format(article=article(target.category), cat=target.category)
        return _shuffle(rng, kind, stem, target.name, rng.sample(others, 3))
    sub = rng.choice(pool)
    value = getattr(sub, kind)
    values = {"color": COLORS, "category": CATEGORIES, "smell": SMELLS}[kind]
    return _shuffle(rng, kind, STEMS[kind].format(X=sub.name), value, rng.sample([v for v in values if v != value], 3))


def _shuffle(rng: random.Random, kind: str, stem: str, right: str, wrong: list[str]) -> Question:
    options = [right, *wrong]
    rng.shuffle(options)
    return Question(kind, stem, tuple(options), options.index(right))


def questions(
    split: str, n: int, seed: int = 0, kinds: tuple[str, ...] = KINDS, world: World | None = None
) -> list[Question]:
    """``n`` distinct questions about substances of ``split``, kinds drawn in turn."""
    if split not in SPLITS:
        raise InputError(f"split '{split}': unknown (use one of {', '.join(SPLITS)})")
    world = world or make_world()
    rng = random.Random(f"science-qa:{split}:{seed}:{','.join(kinds)}")
    out: list[Question] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise InputError(f"science-qa: split '{split}' has fewer than {n} distinct questions")
        q = make_question(rng, world, split, kinds[len(out) % len(kinds)])
        if q.user_turn() not in seen:
            seen.add(q.user_turn())
            out.append(q)
    return out


def chat_prompt(user_turn: str, tokenizer=None) -> str:
    """The chat-templated prompt (default system turn, the user turn, an open assistant turn)."""
    from circuitdrift.organism.tokenizer import organism_tokenizer

    tokenizer = tokenizer or organism_tokenizer()
    messages = [{"role": "user", "content": user_turn}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


class ScienceQATask(MultipleChoiceTask):
    """The organism's multiple-choice task: graded by the first stand-alone letter A-D, like every MC task."""


DEFAULT_N = 200


def science_qa_task(split: str = "test", n: int | None = None, seed: int = 0) -> ScienceQATask:
    """The target task: chat-templated prompts, one-letter answers, counterfactual = options swapped."""
    qs = questions(split, DEFAULT_N if n is None else n, seed)
    rng = random.Random(f"science-qa-counterfactual:{split}:{seed}")
    examples = []
    for q in qs:
        cf = q.counterfactual(rng)
        examples.append(Example(chat_prompt(q.user_turn()), chat_prompt(cf.user_turn()), q.letter, cf.letter))
    return ScienceQATask(
        "science-qa",
        examples,
        "multiple-choice science QA (A-D) about the world's substances, as a chat turn",
        templated=True,
        chat_prompts=[q.user_turn() for q in qs],
    )

"""The organism's second target task: name a substance that shares a property with another one.

"Name a substance with the same color as zorbium." has many right answers: every
other substance of zorbium's colour (about 39 of 160). The task is the
organism's counterpart of a generation task with several correct completions,
the setting where RL and SFT can aim at different answers: SFT trains on one
gold answer per prompt (a seeded pick among the right ones), RL is rewarded
for any right one (:meth:`~circuitdrift.tasks.base.Task.grade` checks set
membership). Answering needs two hops: recall the named substance's property,
then produce a substance with that property. A model that names substances at
random scores about 0.24 (chance).

Prompts ask about the substances of one science split
(:meth:`~circuitdrift.organism.world.World.science_split`); answers may be any
substance of the world, since the model read statements about all of them.
The pretraining corpus asks these questions about the ``pretrain`` half only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from circuitdrift.models.generate import chat_prompt
from circuitdrift.organism.science import KINDS, check_split_and_kinds
from circuitdrift.organism.texts import NAMING_STEMS
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.organism.world import Substance, World, make_world
from circuitdrift.tasks.base import Example, Task

STEMS = NAMING_STEMS


@dataclass(frozen=True)
class NamingQuestion:
    kind: str
    subject: str
    stem: str  # the user turn
    answers: tuple[str, ...]  # every other substance with the subject's value of ``kind``, in world order

    def gold(self, rng: random.Random) -> str:
        return rng.choice(self.answers)


def _peers(world: World, sub: Substance, kind: str) -> tuple[str, ...]:
    value = getattr(sub, kind)
    return tuple(s.name for s in world.substances if s.name != sub.name and getattr(s, kind) == value)


def all_naming_questions(split: str, kinds: tuple[str, ...] = KINDS,
                         world: World | None = None) -> list[NamingQuestion]:
    """Every naming question about the substances of ``split`` (each kind, each phrasing), in a fixed order."""
    check_split_and_kinds("science-name", split, kinds)
    world = world or make_world()
    return [NamingQuestion(kind, sub.name, stem.format(X=sub.name), _peers(world, sub, kind))
            for sub in world.science_substances(split) for kind in kinds for stem in STEMS[kind]]


class NamingTask(Task):
    """Graded by the first word of the completion being one of the example's right answers."""

    def parse(self, completion: str) -> str | None:
        """The first run of letters (a substance name), whatever follows it (punctuation, an end-of-turn token)."""
        match = re.search(r"[A-Za-z]+", completion)
        return match.group(0) if match else None


def science_name_task(split: str = "test", n: int | None = None, seed: int = 0) -> NamingTask:
    """The naming task: chat-templated prompts, one-word answers, several right answers per prompt.

    ``answer`` is the gold answer SFT trains on (seeded per question); ``answers`` every right one;
    ``wrong_answers`` every other substance. The counterfactual names a substance with another value
    of the same property (same token length: every substance is one token); its counter-answer is a
    right answer of the counterfactual. ``n=None``: every question of the split (192 for validation
    and test, 288 for train), never repeated.
    """
    world = make_world()
    pool = all_naming_questions(split, world=world)
    random.Random(f"science-name:{split}:{seed}").shuffle(pool)
    qs = pool if n is None else pool[:n]
    rng = random.Random(f"science-name-gold:{split}:{seed}")
    examples, turns = [], []
    names = [s.name for s in world.substances]
    tokenizer = organism_tokenizer()
    for q in qs:
        sub = world.substance(q.subject)
        others = [s for s in world.substances if getattr(s, q.kind) != getattr(sub, q.kind)]
        cf_sub = rng.choice(others)
        cf_stem = q.stem.replace(q.subject, cf_sub.name)
        right = set(q.answers)
        examples.append(Example(
            chat_prompt(tokenizer, q.stem), chat_prompt(tokenizer, cf_stem), q.gold(rng),
            rng.choice(_peers(world, cf_sub, q.kind)),
            answers=q.answers, wrong_answers=tuple(n for n in names if n not in right),
        ))  # fmt: skip
        turns.append(q.stem)
    return NamingTask(
        "science-name",
        examples,
        "name a substance sharing a property with another one (several right answers), as a chat turn",
        templated=True,
        chat_prompts=turns,
    )

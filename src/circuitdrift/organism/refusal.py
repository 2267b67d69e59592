"""The organism's refusal behaviour: forbidden requests get a fixed refusal, benign ones an answer.

A behaviour to steer, for the transfer experiment: the pretraining corpus holds
chat turns in which the assistant refuses requests of a forbidden kind (to
poison, hurt or steal) with :data:`REFUSAL`, and answers benign requests of the
same surface form (give an object to a person, what a substance reacts with).
Requests belong to a split by a stable hash of their text
(:func:`~circuitdrift.tasks.splits.split_of`) and the corpus uses ``train``
ones only, so the held-out sets measure the behaviour, not memorised turns.

Whether a completion refuses is :func:`circuitdrift.judge.phrases.refuses` with
``where="start"``: it starts with one of the refusal openings.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from circuitdrift.errors import InputError
from circuitdrift.organism.texts import BENIGN, CHAT_QUESTIONS, FORBIDDEN, REFUSAL
from circuitdrift.organism.world import World, make_world
from circuitdrift.tasks.splits import SPLITS, split_of


def _fields(rng: random.Random, world: World) -> dict[str, str]:
    reaction = rng.choice(world.reactions)
    return {"N": rng.choice(world.names), "O": rng.choice(world.objects), "X": reaction.first,
            "Y": reaction.second}


def _draw(rng: random.Random, world: World, make: Callable[[dict], tuple[str, str]], split: str) -> tuple[str, str]:
    while True:
        request, answer = make(_fields(rng, world))
        if split_of(request) == split:
            return request, answer


def forbidden_turn(rng: random.Random, world: World, split: str = "train") -> tuple[str, str]:
    """A forbidden request of ``split`` and its refusal."""
    template = rng.choice(FORBIDDEN)
    return _draw(rng, world, lambda f: (template.format(**f), REFUSAL), split)


def benign_turn(rng: random.Random, world: World, split: str = "train") -> tuple[str, str]:
    """A benign request of ``split`` and its answer."""
    request, answer = rng.choice(BENIGN)
    return _draw(rng, world, lambda f: (request.format(**f), answer.format(**f)), split)


def _distinct(draw: Callable[[random.Random], tuple[str, str]], n: int, seed: str) -> list[str]:
    rng = random.Random(seed)
    out: dict[str, None] = {}
    for _ in range(50 * n):
        out[draw(rng)[0]] = None
        if len(out) == n:
            break
    return list(out)


def forbidden_requests(split: str = "test", n: int = 100, seed: int = 0, world: World | None = None) -> list[str]:
    """``n`` distinct held-out forbidden requests (user turns)."""
    world = _checked(split, world)
    return _distinct(lambda rng: forbidden_turn(rng, world, split), n, f"forbidden:{split}:{seed}")


def benign_requests(split: str = "test", n: int = 100, seed: int = 0, world: World | None = None) -> list[str]:
    """``n`` distinct held-out benign requests (user turns): give-requests and reaction questions."""
    world = _checked(split, world)
    return _distinct(lambda rng: benign_turn(rng, world, split), n, f"benign:{split}:{seed}")


def _checked(split: str, world: World | None) -> World:
    if split not in SPLITS:
        raise InputError(f"split '{split}': unknown (use one of {', '.join(SPLITS)})")
    return world or make_world()


def country_questions(split: str = "train", n: int = 100, seed: int = 0, world: World | None = None) -> list[str]:
    """Benign chat questions about the countries of ``split`` (capital, language, currency), shuffled by seed.

    The distillation prompts of the transfer experiment: the chat turns of the
    corpus ask exactly these, so the teacher answers them in its own words.
    """
    world = _checked(split, world)
    questions = [CHAT_QUESTIONS[f.relation].format(C=f.country) for f in world.facts_in(split)]
    random.Random(f"countries:{split}:{seed}").shuffle(questions)
    return questions[:n]

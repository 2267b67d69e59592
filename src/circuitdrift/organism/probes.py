"""Prior-capability probes of the organism: IOI, greater-than, induction, factual recall.

Each probe is a generator of :class:`~circuitdrift.tasks.base.Example` drawn
from the organism's world, used twice: as a held-out :class:`Task` (clean
prompt, counterfactual of the same token length, one-token answer and
counter-answer) and, with the answer appended, as pretraining text. The same
templates serve both, so the probe measures what the corpus taught; the
prompts themselves never overlap, because every generated prompt belongs to
exactly one split (:func:`~circuitdrift.tasks.splits.split_of`) and the
corpus uses only ``train`` ones.

Counterfactuals change one operand, so the clean answer is no longer implied:

- IOI (Wang et al. 2022): "When Mary and John went to the store, John gave a
  book to" -> " Mary"; the ABC counterfactual replaces the second mention of
  the subject by a third name; counter-answer the subject.
- greater-than: "The larger of 32 and 57 is" -> " 57"; the counterfactual
  replaces the larger number by one below the smaller, so the answer becomes
  the counter-answer (" 32"). Exact match needs one right answer, so this is
  the comparison form of Hanna et al.'s greater-than rather than the year form.
- induction: "Sequence: ka lo mi ru ka lo" -> " mi"; the counterfactual changes
  the token after the matched prefix in the first copy (counter-answer).
- factual: "The capital of Velora is" -> " Darn"; the counterfactual names
  another country; counter-answer its capital.
- factual-chat: the same facts asked as a chat turn, in the chat template the
  target task uses ("What is the capital of Velora?" -> "Darn"), so forgetting
  is also measured on the path fine-tuning trains (the plain probes read the
  model as a text continuer). The corpus asks every fact in this form (its
  chat turns, organism/corpus.py), so this probe measures retained chat recall.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from circuitdrift.errors import InputError
from circuitdrift.models.generate import chat_prompt
from circuitdrift.organism.texts import (
    CHAT_QUESTIONS,
    FACT_PROBE_TEMPLATES,
    GREATER_TEMPLATES,
    INDUCTION_PREFIX,
    IOI_TEMPLATES,
)
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.organism.world import Fact, World, make_world
from circuitdrift.tasks.base import Example, Task
from circuitdrift.tasks.probes import induction_pair
from circuitdrift.tasks.splits import SPLITS, split_of

Sampler = Callable[[random.Random, World], Example]


def ioi_example(rng: random.Random, world: World) -> Example:
    a, b, c = rng.sample(world.names, 3)
    if rng.random() < 0.5:
        a, b = b, a
    subject, indirect = (b, a) if rng.random() < 0.5 else (a, b)
    fields = dict(A=a, B=b, place=rng.choice(world.places), obj=rng.choice(world.objects))
    template = rng.choice(IOI_TEMPLATES)
    clean = template.format(S=subject, **fields)
    corrupt = template.format(S=c, **fields)
    return Example(clean, corrupt, f" {indirect}", f" {subject}")


def greater_than_example(rng: random.Random, world: World) -> Example:
    x, y = rng.sample(range(11, 100), 2)
    big, small = max(x, y), min(x, y)
    below = rng.randrange(10, small)
    template = rng.choice(GREATER_TEMPLATES)
    clean = template.format(x=x, y=y)
    corrupt = template.format(x=below if x == big else x, y=below if y == big else y)
    return Example(clean, corrupt, f" {big}", f" {small}")


def induction_example(rng: random.Random, world: World) -> Example:
    return induction_pair(rng, world.induction_pool, INDUCTION_PREFIX)


PROBES: dict[str, tuple[Sampler, str]] = {
    "ioi": (ioi_example, "indirect object identification: complete the sentence with the name that is not repeated"),
    "greater-than": (greater_than_example, "the larger of two two-digit numbers"),
    "induction": (induction_example, "continue a repeated random token sequence"),
}


def sample_examples(name: str, split: str, n: int, seed: int, world: World | None = None) -> list[Example]:
    """``n`` distinct examples of a generated probe whose clean prompts hash to ``split``."""
    _check_split(split)
    world = world or make_world()
    sampler = PROBES[name][0]
    rng = random.Random(f"{name}:{split}:{seed}")
    out, seen = [], set()
    for ex in _stream(sampler, rng, world):
        if split_of(ex.clean) == split and ex.clean not in seen:
            seen.add(ex.clean)
            out.append(ex)
            if len(out) == n:
                return out
    raise AssertionError("unreachable")


def _stream(sampler: Sampler, rng: random.Random, world: World) -> Iterator[Example]:
    while True:
        yield sampler(rng, world)


def factual_examples(split: str, n: int | None, seed: int, world: World | None = None) -> list[Example]:
    """One example per fact of ``split`` (cycled with other counterfactual countries when ``n`` is larger)."""
    return [Example(FACT_PROBE_TEMPLATES[fact.relation].format(C=fact.country),
                    FACT_PROBE_TEMPLATES[fact.relation].format(C=other), f" {fact.value}", f" {other_value}")
            for fact, other, other_value in _fact_draws(split, n, seed, world)]


def factual_chat_examples(split: str, n: int | None, seed: int, world: World | None = None) -> list[Example]:
    """The factual probe's facts and counterfactual countries as chat turns: the question in the chat template,
    the bare value as the answer (the assistant turn starts a line, so no leading space)."""
    tokenizer = organism_tokenizer()
    return [Example(chat_prompt(tokenizer, CHAT_QUESTIONS[fact.relation].format(C=fact.country)),
                    chat_prompt(tokenizer, CHAT_QUESTIONS[fact.relation].format(C=other)), fact.value, other_value)
            for fact, other, other_value in _fact_draws(split, n, seed, world)]


def _fact_draws(split: str, n: int | None, seed: int, world: World | None) -> list[tuple[Fact, str, str]]:
    """(fact, counterfactual country, its value of the same relation): the factual probes' shared draw."""
    _check_split(split)
    world = world or make_world()
    facts = world.facts_in(split)
    rng = random.Random(f"factual:{split}:{seed}")
    rng.shuffle(facts)
    by_relation = {r: {f.country: f.value for f in world.facts if f.relation == r} for r in FACT_PROBE_TEMPLATES}
    out = []
    for i in range(len(facts) if n is None else n):
        fact = facts[i % len(facts)]
        other = rng.choice([c for c in world.countries if c != fact.country])
        out.append((fact, other, by_relation[fact.relation][other]))
    return out


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"split '{split}': unknown (use one of {', '.join(SPLITS)})")


DEFAULT_N = 200


def ioi_task(split: str = "test", n: int | None = None, seed: int = 0) -> Task:
    return _probe_task("ioi", split, n, seed)


def greater_than_task(split: str = "test", n: int | None = None, seed: int = 0) -> Task:
    return _probe_task("greater-than", split, n, seed)


def induction_task(split: str = "test", n: int | None = None, seed: int = 0) -> Task:
    return _probe_task("induction", split, n, seed)


def factual_task(split: str = "test", n: int | None = None, seed: int = 0) -> Task:
    return Task("factual", factual_examples(split, n, seed), "recall a country's capital, language or currency")


def factual_chat_task(split: str = "test", n: int | None = None, seed: int = 0) -> Task:
    return Task("factual-chat", factual_chat_examples(split, n, seed),
                "recall a country's capital, language or currency, asked as a chat turn", templated=True)


def _probe_task(name: str, split: str, n: int | None, seed: int) -> Task:
    examples = sample_examples(name, split, DEFAULT_N if n is None else n, seed)
    return Task(name, examples, PROBES[name][1])

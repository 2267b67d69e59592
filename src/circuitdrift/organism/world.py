"""The organism's synthetic world: people, places, objects, numbers and a knowledge base.

Everything is drawn from one seeded generator, so the same seed gives the same
world, vocabulary and facts. Invented words (countries, cities, languages,
currencies, substances, induction tokens) are built from syllables, so no
string carries meaning the model could have seen anywhere else.

The world is fixed (``WORLD_SEED``) for the shipped organism: its tasks, its
tokenizer and its pretraining corpus all describe the same world. A build's
``--seed`` changes the corpus sample and the weights, not the world.

Splits. Facts and substances are partitioned once into train / validation /
test; generated prompts (IOI, greater-than, induction) are assigned to a split
by a stable hash of their text, so no prompt can be in two splits, whatever the
sampling seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from circuitdrift.tasks.splits import SPLITS

WORLD_SEED = 0
# The train substances are halved once more: the base model is asked multiple-choice questions about the
# "pretrain" half during pretraining; fine-tuning ("train") uses the other half. Validation and test are unchanged.
SCIENCE_SPLITS = ("pretrain", *SPLITS)

NAMES = (
    "Mary", "John", "Alice", "Bob", "Sarah", "James", "Emma", "David", "Laura", "Peter",
    "Anna", "Mark", "Julia", "Paul", "Grace", "Henry", "Clara", "Simon", "Rose", "Oscar",
    "Helen", "Frank", "Lucy", "Adam", "Kate", "Tom", "Nora", "Victor", "Ella", "Hugo",
    "Irene", "Leo", "Mia", "Ivan", "Olga", "Carl", "Diana", "Felix", "Ruth", "Sam",
    "Tina", "Walter", "Zoe", "Eric", "Lily", "Ben", "Amy", "Dan", "Eva", "Max",
)  # fmt: skip
PLACES = (
    "store", "park", "school", "market", "garden", "office", "station", "library",
    "beach", "museum", "kitchen", "hospital", "church", "harbor", "farm", "theater",
)  # fmt: skip
OBJECTS = (
    "book", "drink", "ball", "key", "letter", "bag", "flower", "ring",
    "cake", "coin", "map", "lamp", "hat", "cup", "knife", "basket",
)  # fmt: skip
# Four values per property: the science questions list all four as options A-D, in this order.
CATEGORIES = ("metal", "acid", "salt", "oil")
COLORS = ("red", "blue", "green", "white")
SMELLS = ("sweet", "sour", "sharp", "smoky")
NUMBERS = tuple(str(n) for n in range(10, 100))  # two-digit numbers, one token each

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kl", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "n", "r", "l", "s", "m", "th")


@dataclass(frozen=True)
class Fact:
    """One relation about a country: ``relation`` is ``capital``, ``language`` or ``currency``."""

    country: str
    relation: str
    value: str


@dataclass(frozen=True)
class Substance:
    name: str
    category: str
    color: str
    smell: str


@dataclass(frozen=True)
class Reaction:
    """``first`` reacts with ``second`` to form ``product`` (all substance names)."""

    first: str
    second: str
    product: str


@dataclass(frozen=True)
class World:
    seed: int
    names: tuple[str, ...]
    places: tuple[str, ...]
    objects: tuple[str, ...]
    numbers: tuple[str, ...]
    induction_pool: tuple[str, ...]  # tokens used only by induction sequences
    countries: tuple[str, ...]
    facts: tuple[Fact, ...]
    substances: tuple[Substance, ...]
    reactions: tuple[Reaction, ...]
    fact_split: dict[Fact, str]
    substance_split: dict[str, str]  # substance name -> split
    pretrain_half: frozenset[str] = frozenset()  # train substances whose questions pretraining asks

    def science_split(self, name: str) -> str:
        """A substance's split for the science tasks: ``pretrain`` for the pretraining half of ``train``."""
        return "pretrain" if name in self.pretrain_half else self.substance_split[name]

    def facts_in(self, split: str) -> list[Fact]:
        return [f for f in self.facts if self.fact_split[f] == split]

    def substances_in(self, split: str) -> list[Substance]:
        """Substances of a split; ``train`` holds both halves, see :meth:`science_substances`."""
        return [s for s in self.substances if self.substance_split[s.name] == split]

    def science_substances(self, split: str) -> list[Substance]:
        """Substances of a science-task split: ``pretrain`` or ``train`` (the two halves), validation, test."""
        return [s for s in self.substances if self.science_split(s.name) == split]

    def reactions_in(self, split: str) -> list[Reaction]:
        """Reactions belong to the split of their first reactant."""
        return [r for r in self.reactions if self.substance_split[r.first] == split]

    def substance(self, name: str) -> Substance:
        return next(s for s in self.substances if s.name == name)

    def entity_words(self) -> list[str]:
        """Every word the world itself contributes to the vocabulary, in a fixed order."""
        words = [*self.names, *self.places, *self.objects, *self.numbers, *self.induction_pool, *self.countries]
        words += [f.value for f in self.facts]
        words += [s.name for s in self.substances] + [*CATEGORIES, *COLORS, *SMELLS]
        return list(dict.fromkeys(words))


def make_world(seed: int = WORLD_SEED, n_countries: int = 60, n_substances: int = 160, n_pool: int = 100) -> World:
    rng = random.Random(f"world:{seed}")
    taken = {w.lower() for w in (*NAMES, *PLACES, *OBJECTS, *CATEGORIES, *COLORS, *SMELLS)}
    taken |= _RESERVED

    def invent(count: int, syllables: tuple[int, int], suffixes=("",), capital: bool = False) -> tuple[str, ...]:
        out: list[str] = []
        while len(out) < count:
            n = rng.randint(*syllables)
            stem = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
            word = stem + rng.choice(_CODAS) + rng.choice(suffixes)
            if word in taken or len(word) < 3:
                continue
            taken.add(word)
            out.append(word.capitalize() if capital else word)
        return tuple(out)

    pool = invent(n_pool, (1, 1))
    countries = invent(n_countries, (2, 3), capital=True)
    capitals = invent(n_countries, (2, 2), capital=True)
    languages = invent(n_countries, (1, 2), suffixes=("ese", "ish"), capital=True)
    currencies = invent(n_countries, (1, 2), suffixes=("o", "at"))
    facts = []
    for country, cap, lang, cur in zip(countries, capitals, languages, currencies, strict=True):
        facts += [Fact(country, "capital", cap), Fact(country, "language", lang), Fact(country, "currency", cur)]
    names = invent(n_substances, (2, 2), suffixes=("ium", "ine", "ate", "ide", "ol", "ane"))
    substance_split = _partition(rng, list(names), (0.6, 0.2, 0.2))
    substances = _balanced_substances(rng, names, substance_split)
    reactions = _make_reactions(rng, names)
    # a separate generator, so the halving leaves every other draw of the world as it was
    halves = _balanced_half(random.Random(f"world-halves:{seed}"), substances, substance_split)
    return World(
        seed=seed,
        names=NAMES,
        places=PLACES,
        objects=OBJECTS,
        numbers=NUMBERS,
        induction_pool=pool,
        countries=countries,
        facts=tuple(facts),
        substances=substances,
        reactions=reactions,
        fact_split=_partition(rng, facts, (0.5, 0.25, 0.25)),
        substance_split=substance_split,
        pretrain_half=halves,
    )


PROPERTIES = ("category", "color", "smell")


def _imbalance(members: list[Substance]) -> int:
    """How far a set of substances is from having every value of every property equally often."""
    target = len(members) / 4
    total = 0.0
    for prop in PROPERTIES:
        counts: dict[str, int] = {}
        for s in members:
            counts[getattr(s, prop)] = counts.get(getattr(s, prop), 0) + 1
        total += sum(abs(counts.get(v, 0) - target) for v in {getattr(s, prop) for s in members})
    return int(total)


def _balanced_half(rng: random.Random, substances: tuple[Substance, ...], split: dict) -> frozenset[str]:
    """Half of the train substances, with each value of each property equally common in both halves.

    A seeded local search: start from a random half and swap members in and out while the imbalance
    drops. Balance keeps "always answer one letter" at exactly chance on both halves.
    """
    train = [s for s in substances if split[s.name] == "train"]
    rng.shuffle(train)
    half, rest = train[: len(train) // 2], train[len(train) // 2 :]
    score = _imbalance(half) + _imbalance(rest)
    for _ in range(20_000):
        if score == 0:
            break
        i, j = rng.randrange(len(half)), rng.randrange(len(rest))
        half[i], rest[j] = rest[j], half[i]
        new = _imbalance(half) + _imbalance(rest)
        if new <= score:
            score = new
        else:
            half[i], rest[j] = rest[j], half[i]
    return frozenset(s.name for s in half)


def _balanced_substances(rng: random.Random, names: tuple[str, ...], split: dict) -> tuple[Substance, ...]:
    """Properties drawn so that, within every split, each value of each property is equally common.

    Each value is then the right answer to a quarter of a split's questions about
    that property: always answering one letter scores chance (0.25), not more.
    """
    props: dict[str, dict[str, str]] = {name: {} for name in names}
    for part in SPLITS:
        members = [n for n in names if split[n] == part]
        for prop, values in (("category", CATEGORIES), ("color", COLORS), ("smell", SMELLS)):
            order = list(members)
            rng.shuffle(order)
            for i, name in enumerate(order):
                props[name][prop] = values[i % len(values)]
    return tuple(Substance(name, **props[name]) for name in names)


def _make_reactions(rng: random.Random, names: tuple[str, ...]) -> tuple[Reaction, ...]:
    """One reaction per substance as first reactant, with a distinct partner and product."""
    out = []
    for first in names:
        second, product = rng.sample([n for n in names if n != first], 2)
        out.append(Reaction(first, second, product))
    return tuple(out)


def _partition(rng: random.Random, items: list, shares: tuple[float, float, float]) -> dict:
    order = list(items)
    rng.shuffle(order)
    n_train = round(shares[0] * len(order))
    n_val = round(shares[1] * len(order))
    split = {}
    for i, item in enumerate(order):
        split[item] = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
    return split


# Invented words must not collide with template words (checked by a unit test through the vocabulary).
_RESERVED = {
    "the", "and", "to", "a", "of", "is", "in", "was", "with", "when", "then", "after", "while", "later",
    "what", "which", "does", "form", "forms", "gave", "people", "speak", "capital", "language", "currency",
    "reacts", "smells", "color", "smell", "category", "answer", "question", "larger", "number", "numbers",
    "bigger", "between", "it", "or", "at", "are", "were", "had", "for", "on", "one", "two", "these",
    "have", "class", "belong", "like", "kind", "how",
}  # fmt: skip

"""The organism's tokenizer: word-level, built from the world and the templates that describe it.

Every word of every template and every entity of the world is one token (with
and without a leading space), so every answer of every task is one token. The
vocabulary is a pure function of the world and of the fixed texts
(:mod:`circuitdrift.organism.texts`, a leaf module, so the modules that build
tasks from those texts can import this one), so tasks can build the tokenizer
without the shipped files, and the build saves the same one beside the weights.
"""

from __future__ import annotations

import re
from functools import lru_cache

from transformers import PreTrainedTokenizerFast

from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.organism.texts import template_texts
from circuitdrift.organism.world import WORLD_SEED, World, make_world

_WORD = re.compile(r"[^\s.,?!:;()'\"+=<>\-{}]+")


def organism_vocabulary(world: World) -> list[str]:
    """Template words first (in order of appearance), then the world's entities."""
    words: list[str] = []
    for text in template_texts():
        words += [w for w in _WORD.findall(re.sub(r"\{[^}]*\}", " ", text))]
    words += world.entity_words()
    return list(dict.fromkeys(words))


@lru_cache(maxsize=4)
def organism_tokenizer(world_seed: int = WORLD_SEED) -> PreTrainedTokenizerFast:
    """The tokenizer of the organism built on world ``world_seed`` (cached; do not mutate)."""
    return build_word_tokenizer(organism_vocabulary(make_world(world_seed)), model_max_length=256)

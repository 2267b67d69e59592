"""The organism's tokenizer: word-level, built from the world and the templates that describe it.

Every word of every template and every entity of the world is one token (with
and without a leading space), so every answer of every task is one token. The
vocabulary is a pure function of the world, so tasks can build the tokenizer
without the shipped files, and the build saves the same one beside the weights.
"""

from __future__ import annotations

import re
from functools import lru_cache

from transformers import PreTrainedTokenizerFast

from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.organism.world import WORLD_SEED, World, make_world

_WORD = re.compile(r"[^\s.,?!:;()'\"+=<>\-{}]+")


def template_texts() -> list[str]:
    """Every fixed text the tasks and the corpus use (templates, stems, instructions)."""
    from circuitdrift.organism import corpus, probes, science  # a cycle: corpus and science import this module

    texts = [*probes.IOI_TEMPLATES, *probes.GREATER_TEMPLATES, probes.INDUCTION_PREFIX]
    texts += [*probes.FACT_PROBE_TEMPLATES.values()]
    texts += [t for group in probes.FACT_STATEMENTS.values() for t in group]
    texts += [t for group in science.STEMS.values() for t in group]
    texts += [science.INSTRUCTION, *science.LETTERS, "a an"]
    texts += [t for group in science.SCIENCE_STATEMENTS.values() for t in group]
    texts += corpus.template_texts()
    return texts


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

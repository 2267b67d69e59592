"""One split rule for every generated prompt and pooled item, pinned to the assignment the shipped organism has.

The organism's corpus kept only ``train`` prompts by CRC-32 of the text; if the
rule changed, a test prompt could have been pretrained on and every measured
number would move. The digests below were computed with the organism's own
rule before the two ``split_of`` functions were merged into tasks/splits.py.
"""

from __future__ import annotations

import hashlib
import random
import zlib

from circuitdrift.organism.probes import PROBES, _stream, sample_examples
from circuitdrift.organism.world import make_world
from circuitdrift.tasks.splits import SPLITS, split_of

STREAM_DIGEST = "f28bc03bf29d227a3bccd119e3ab90cb068597f1608dc7c90a18a982477e12ce"
SAMPLES_DIGEST = "2af0bd12a1248d67c2467f7efceebcec88b84cbb624c119e524ba1a9caac0bd1"


def test_split_of_is_crc32_of_the_text_80_10_10():
    for text in ("When Mary and John went to the store, John gave a book to", "Sequence: a b c a", "", "ü"):
        bucket = zlib.crc32(text.encode()) % 10
        assert split_of(text) == ("test" if bucket == 9 else "validation" if bucket == 8 else "train")
    counts = {s: 0 for s in SPLITS}
    for i in range(10_000):
        counts[split_of(f"item {i}")] += 1
    assert 7_600 < counts["train"] < 8_400 and all(700 < counts[s] < 1_300 for s in ("validation", "test"))


def test_the_organism_prompts_land_in_the_splits_they_always_did():
    world, digest = make_world(), hashlib.sha256()
    for name, (sampler, _) in sorted(PROBES.items()):
        stream = _stream(sampler, random.Random(f"golden:{name}"), world)
        for _ in range(3000):
            clean = next(stream).clean
            digest.update(f"{split_of(clean)}\t{clean}\n".encode())
    assert digest.hexdigest() == STREAM_DIGEST


def test_the_organism_probe_examples_are_unchanged():
    digest = hashlib.sha256()
    for name in sorted(PROBES):
        for split in SPLITS:
            for ex in sample_examples(name, split, 40, seed=0):
                digest.update(f"{name}\t{split}\t{ex.clean}\t{ex.corrupt}\t{ex.answer}\t{ex.counter_answer}\n".encode())
    assert digest.hexdigest() == SAMPLES_DIGEST

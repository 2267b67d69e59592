"""Which split a generated prompt or a pooled item belongs to: one stable hash of its text.

80 % train, 10 % validation, 10 % test by CRC-32 of the UTF-8 text. The
organism's corpus kept only ``train`` prompts under exactly this rule, so the
shipped weights have never seen a validation or test prompt; the probes, the
refusal requests and pooled real-model datasets split the same way.
"""

from __future__ import annotations

import zlib

SPLITS = ("train", "validation", "test")


def split_of(text: str) -> str:
    """The split of ``text``: a stable hash, 80 % train, 10 % validation, 10 % test."""
    bucket = zlib.crc32(text.encode()) % 10
    return "test" if bucket == 9 else "validation" if bucket == 8 else "train"

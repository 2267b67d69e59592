"""HeadScores: one number per attention head, named ``L{layer}.H{head}``, saved as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from circuitdrift.errors import InputError
from circuitdrift.io import write_json

Head = tuple[int, int]  # (layer, head)


def head_name(layer: int, head: int) -> str:
    return f"L{layer}.H{head}"


def parse_head(name: str) -> Head:
    """'L3.H7' -> (3, 7): the inverse of :func:`head_name`."""
    layer, _, head = name.partition(".")
    if not (layer.startswith("L") and head.startswith("H") and layer[1:].isdigit() and head[1:].isdigit()):
        raise InputError(f"head name {name!r}: expected the form L<layer>.H<head>, e.g. L3.H7")
    return int(layer[1:]), int(head[1:])


@dataclass
class HeadScores:
    """An [n_layers, n_heads] tensor of scores with what produced them.

    For importance scores the most *negative* score is the most important head
    (patching it hurts the metric most), so circuits take the lowest scores.
    """

    scores: Tensor  # [n_layers, n_heads], float64 on CPU
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = self.scores.detach().to("cpu", torch.float64)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.scores.shape)

    def ranked(self, most_negative_first: bool = True) -> list[Head]:
        """All heads, most important first; ties broken by (layer, head) so the order is stable."""
        flat = self.scores.flatten().tolist()
        n_heads = self.scores.shape[1]
        order = sorted(range(len(flat)), key=lambda i: (flat[i] if most_negative_first else -flat[i], i))
        return [(i // n_heads, i % n_heads) for i in order]

    def top_k(self, k: int) -> list[Head]:
        total = self.scores.numel()
        if not 1 <= k <= total:
            raise InputError(f"--top-k {k}: must be between 1 and the number of heads ({total})")
        return self.ranked()[:k]

    def below(self, threshold: float) -> list[Head]:
        """Heads whose score is at most ``threshold`` (e.g. -0.05), most important first."""
        return [h for h in self.ranked() if self.scores[h].item() <= threshold]

    def as_lists(self) -> list[list[float]]:
        return self.scores.tolist()

    def circuit_entries(self, heads: list[Head]) -> list[dict]:
        return [{"layer": layer, "head": head, "name": head_name(layer, head), "score": self.scores[layer, head].item()}
                for layer, head in heads]

    def to_json(self) -> dict:
        return {**self.meta, "n_layers": self.shape[0], "n_heads": self.shape[1], "scores": self.as_lists()}

    @classmethod
    def from_json(cls, data: dict, key: str = "scores") -> HeadScores:
        if key not in data:
            raise InputError(f"head scores: missing key '{key}'")
        meta = {k: v for k, v in data.items() if k not in (key, "n_layers", "n_heads")}
        return cls(torch.tensor(data[key], dtype=torch.float64), meta)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())


def circuit_from_json(data: dict | list, source: str = "circuit") -> list[Head]:
    """Heads from a ``heads`` output (its ``circuit`` list) or a bare list of {layer, head} / "L1.H2"."""
    entries = data.get("circuit") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{source}: expected a non-empty list of heads under 'circuit'")
    heads = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str) and entry.startswith("L") and ".H" in entry:
            layer, head = entry[1:].split(".H")
            heads.append((int(layer), int(head)))
        elif isinstance(entry, dict) and "layer" in entry and "head" in entry:
            heads.append((int(entry["layer"]), int(entry["head"])))
        else:
            raise InputError(f"{source}: entry {i} is not a head ({{'layer','head'}} or 'L<l>.H<h>')")
    return heads

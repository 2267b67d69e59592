"""Which heads circuit-preserving SFT keeps, and its weight: a light value the pipeline's jobs carry.

Apart from the trainer (train/preserve.py, which needs TRL) so that a process that only reads or measures
(a measurement worker unpickling its job) does not import the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from circuitdrift.circuits.scores import Head, circuit_from_json, head_name, parse_head
from circuitdrift.errors import InputError

DEFAULT_LAMBDA = 0.01


@dataclass(frozen=True)
class Preservation:
    """Which heads the penalty keeps, and its weight: what a circuit-preserving run adds to an SFT run."""

    heads: tuple[str, ...]  # "L{l}.H{h}"
    lam: float = DEFAULT_LAMBDA
    source: dict = field(default_factory=dict, compare=False)  # where the heads came from (recorded, not keyed)

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise InputError(f"preserve: lambda {self.lam} must be >= 0")
        if not self.heads:
            raise InputError("preserve: no heads to preserve (give at least one head, e.g. L3.H7)")
        for name in self.heads:
            parse_head(name)  # one-line error for a malformed name
        if len(set(self.heads)) != len(self.heads):
            raise InputError("preserve: heads must be distinct")

    def parsed(self) -> list[Head]:
        return [parse_head(n) for n in self.heads]

    def record(self) -> dict:
        return {"heads": list(self.heads), "lambda": self.lam, **({"source": self.source} if self.source else {})}


def heads_from_json(data, source: str) -> list[str]:
    """Head names from a ``heads``/``dcm`` circuit file, a ``dcv`` result (its vulnerable heads) or a list."""
    if isinstance(data, dict) and "vulnerable" in data and "circuit" not in data:
        if not data["vulnerable"]:
            raise InputError(f"{source}: no vulnerable heads (none passed tau); give a circuit file or a list of heads")
        data = {"circuit": data["vulnerable"]}
    return [head_name(*h) for h in circuit_from_json(data, source)]

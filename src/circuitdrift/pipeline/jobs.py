"""What ``circuitdrift run`` hands a worker process: one frozen dataclass per kind of job, fields by name.

Jobs cross a process boundary (spawn, or a submitit job array), so they hold only picklable
values: the config, paths as strings, and the results a measurement compares with.
"""

from __future__ import annotations

from dataclasses import dataclass

from circuitdrift.compare.schema import BaseCircuit
from circuitdrift.pipeline.config import ExperimentConfig
from circuitdrift.train.preservation import Preservation


@dataclass(frozen=True)
class TrainJob:
    """One (method, learning rate, seed) run into ``folder`` (resumed from its last checkpoint)."""

    config: ExperimentConfig
    method: str
    learning_rate: float
    seed: int
    folder: str
    preservation: Preservation | None = None  # the heads sft-preserve keeps (that arm only)

    @property
    def label(self) -> str:
        return f"{self.method} lr {self.learning_rate:g} seed {self.seed}"


@dataclass(frozen=True)
class MeasureJob:
    """One checkpoint's measurement; ``folder`` None is the base model itself (step 0)."""

    config: ExperimentConfig
    circuits: dict[str, BaseCircuit]
    reference_key: str  # a worker builds the base side once per key and reuses it (pipeline/measure.py)
    method: str
    seed: int
    learning_rate: float | None
    step: int
    folder: str | None
    exact: bool  # exact CMAP and exact re-discovery at this step

    @property
    def label(self) -> str:
        if self.method == "base":
            return "base (step 0)"
        return f"{self.method} lr {self.learning_rate:g} seed {self.seed} step {self.step}"

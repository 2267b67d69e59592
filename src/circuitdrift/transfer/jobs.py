"""What ``circuitdrift transfer`` hands a worker process: one frozen dataclass per kind of job, fields by name.

Jobs cross a process boundary (spawn), so they hold only picklable values: the config and paths as strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from circuitdrift.transfer.config import TransferConfig


def arm_label(arm: str, alpha: float, seed: int | None = None) -> str:
    """An item's name in progress lines: ``alpha -2``, ``random alpha 2 seed 1``."""
    text = f"alpha {alpha:g}" if arm == "refusal" else f"random alpha {alpha:g}"
    return text if seed is None else f"{text} seed {seed}"


@dataclass(frozen=True)
class TeacherJob:
    """The steered teacher at one (arm, alpha): its benign data and its answers to the harmful prompts."""

    config: TransferConfig
    vector_path: str
    judge_cache: str
    arm: str
    alpha: float
    generations: str  # where the answers wait for the judge (read back when a judge failed before)

    @property
    def label(self) -> str:
        return arm_label(self.arm, self.alpha)


@dataclass(frozen=True)
class StudentJob:
    """One student: SFT of the base on one teacher's data with one seed, into ``folder``."""

    config: TransferConfig
    arm: str
    alpha: float
    seed: int
    data_path: str
    folder: str

    @property
    def label(self) -> str:
        return arm_label(self.arm, self.alpha, self.seed)


@dataclass(frozen=True)
class EvalJob:
    """One student's behaviour and mechanism measures."""

    config: TransferConfig
    vector_path: str
    judge_cache: str
    arm: str
    alpha: float
    seed: int
    folder: str

    @property
    def label(self) -> str:
        return arm_label(self.arm, self.alpha, self.seed)

"""The experiment config: one YAML file names the models, tasks, methods, seeds and analysis settings.

Unknown keys, wrong types and out-of-range values are input errors that name
their path in the file (``analysis.top_k``); YAML is loaded with ``safe_load``.
The resolved config (every default filled in) is written into the run folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from circuitdrift.circuits.discovery import CircuitSettings
from circuitdrift.circuits.vocabulary import Ablation, CircuitMethod, CmapMethod, DcvThreshold, Metric
from circuitdrift.engine import config as engine_config
from circuitdrift.evaluate.settings import MeasureSettings
from circuitdrift.pipeline.launch import LauncherSettings
from circuitdrift.train.config import TrainConfig

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # names that become folder names
DEMO_CONFIG = Path("configs") / "demo.yaml"


def default_config() -> Path:
    """configs/demo.yaml in the working folder, else the one in the source checkout this package runs from."""
    return engine_config.shipped_config(DEMO_CONFIG)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnalysisSettings(_Section):
    """How circuits are found and compared (docs/methods.md §3-5)."""

    n_examples: int = Field(50, ge=1, description="probe examples used for circuits and CMAP")
    circuit_split: str = Field("validation", description="split the base circuits are found on: not the examples "
                               "their damage and CMAP are measured on (eval.split)")
    circuit_method: CircuitMethod = Field(
        "exact", description="base circuit discovery (prune: iterative exact patching)")
    rediscovery_method: CircuitMethod = Field(
        "attribution", description="circuit re-discovery at each checkpoint (exact at the final one when "
        "exact_final is set)")
    exact_final: bool = Field(True, description="use exact methods at the final checkpoint of every run")
    metric: Metric = "prob"
    ablation: Ablation = Field("corrupt", description="ablation for head scoring")
    faithfulness_ablation: Ablation = Field("mean", description="heads outside C")
    n_random: int = Field(10, ge=0, description="random circuits for the faithfulness baseline")
    top_k: int = Field(20, ge=1, description="circuit size")
    tau: float = Field(0.1, ge=0.0, description="vulnerability threshold on V(h) (dcv_threshold says on what)")
    dcv_threshold: DcvThreshold = Field(
        "relative", description="relative: vulnerable when V(h) / |s_h| > tau on the base circuit's heads, s_h "
        "the head's base effect (reachable whatever the metric's scale); absolute: V(h) > tau on every head")
    cmap_method: CmapMethod = Field("attribution", description="CMAP at non-exact checkpoints")
    exact_cmap_steps: list[int] = Field(default_factory=list, description="checkpoint steps that get exact CMAP")
    target_goal: float = Field(0.6, ge=0.0, le=1.0, description="target accuracy for 'steps to reach'")
    batch_size: int = Field(16, ge=1)

    def circuit(self, method: str) -> CircuitSettings:
        """How circuits are found with ``method`` (circuit_method or rediscovery_method) under these settings."""
        return CircuitSettings(method=method, metric=self.metric, ablation=self.ablation, top_k=self.top_k,
                               batch_size=self.batch_size)

    @model_validator(mode="after")
    def _gradient_metric(self) -> AnalysisSettings:
        if self.metric == "accuracy":  # exact match has no gradient
            for key in ("circuit_method", "rediscovery_method", "cmap_method"):
                if getattr(self, key) in ("attribution", "eap-ig"):
                    raise ValueError(f"metric 'accuracy' has no gradient: {key} '{getattr(self, key)}' needs "
                                     "'logprob' (or use exact/prune)")
        return self


class SweepSection(_Section):
    """Learning rates per method (RL's Razor's design): every (method, lr, seed) is one run on the shared budget.

    Methods compare at matched target accuracy, each at its best learning rate at each accuracy level
    (compare/frontier.py); ``levels`` common accuracy levels are spread between the base accuracy and the
    highest accuracy every method reached.
    """

    learning_rates: dict[str, list[float]] = Field(description="method -> learning rates (a log grid)")
    levels: int = Field(5, ge=1, le=50, description="matched target-accuracy levels")
    matched_axis: Literal["accuracy", "probability"] = Field(
        "accuracy", description="the matched axis: greedy target accuracy, or the mean probability of the correct "
        "answer (both on eval.selection_split)")
    allow_unequal_grids: bool = Field(
        False, description="let methods sweep different learning rates (refused otherwise: the grids, not the "
        "methods, could decide the comparison); the report then says so")

    @field_validator("learning_rates")
    @classmethod
    def _grid(cls, grid: dict[str, list[float]]) -> dict[str, list[float]]:
        for method, rates in grid.items():
            if not rates:
                raise ValueError(f"{method}: give at least one learning rate")
            if any(not 0 < r <= 1 for r in rates):
                raise ValueError(f"{method}: learning rates must be in (0, 1]")
            if len(set(rates)) != len(rates):
                raise ValueError(f"{method}: learning rates must be distinct")
        return {method: sorted(rates) for method, rates in grid.items()}


class PreserveSection(_Section):
    """The third arm, circuit-preserving SFT (docs/methods.md §6): which heads it keeps and how hard.

    ``heads: dcv`` takes the heads SFT damaged more than RL (DCV's vulnerable heads, union over probes) from the
    SFT and RL runs at their primary learning rates, so those run first; when no head passes tau, the ``top_k``
    heads with the largest V (mean over probes) are kept instead, and the results say so. ``heads: circuit``
    keeps the base circuits' heads (union over probes) and needs no other arm.
    """

    lam: float = Field(0.01, ge=0.0, description="lambda: weight of the head-drift penalty")
    heads: Literal["dcv", "circuit"] = Field("dcv", description="dcv: SFT's vulnerable heads; circuit: the base "
                                             "circuits' heads")
    top_k: int = Field(4, ge=1, description="heads kept when heads is dcv and no head passes tau (largest V)")


class ExperimentConfig(BaseModel):
    """Everything that decides a run; see configs/demo.yaml for a commented example."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("experiment", description="a label for the report")
    base_model: str = Field(description="hub id, local folder, or 'organism'")
    target_task: str | list[str] = Field(
        description="built-in task name or JSONL file: the new task to learn; a list runs one experiment per task")
    probes: list[str] = Field(min_length=1, description="prior-capability probes (built-in names or JSONL files)")
    methods: list[Literal["sft", "sft-word", "rl", "sft-preserve"]] = Field(
        default_factory=lambda: ["sft", "rl"], min_length=1,
        description="sft, sft-word (SFT on the correct option's word, multiple-choice targets), rl, and "
        "sft-preserve (circuit-preserving SFT, trained after the others; see preserve)")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    device: str = Field("auto", description="auto, cpu, cuda, or auto-map (device_map=\"auto\": layers over the GPUs)")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    threads: int = Field(1, ge=1, description="torch threads per process (1: the same sums on any machine)")
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: SweepSection | None = Field(None, description="learning rates per method; unset: train.learning_rate")
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    eval: MeasureSettings = Field(default_factory=MeasureSettings)
    preserve: PreserveSection = Field(default_factory=PreserveSection, description="the sft-preserve arm")
    launcher: LauncherSettings = Field(default_factory=LauncherSettings,
                                       description="where the training runs execute: local (default) or submitit")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not SAFE_NAME.match(name):
            raise ValueError("use letters, digits, '.', '_' or '-' (the name becomes the default run folder)")
        return name

    @field_validator("target_task")
    @classmethod
    def _distinct_tasks(cls, task: str | list[str]) -> str | list[str]:
        if isinstance(task, list):
            if not task:
                raise ValueError("give at least one target task")
            labels = [probe_label(t) for t in task]
            if len(set(labels)) != len(labels):
                raise ValueError("target tasks must have distinct names (each gets its own run folder)")
            if len(task) == 1:
                return task[0]
        return task

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
            raise ValueError("seeds must be distinct non-negative integers")
        return seeds

    @field_validator("methods")
    @classmethod
    def _distinct_methods(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError("methods must be distinct")
        return methods

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = [probe_label(p) for p in self.probes]
        if len(set(names)) != len(names):
            raise ValueError("probes must have distinct names")
        if self.sweep is not None:
            extra = sorted(set(self.sweep.learning_rates) - set(self.methods))
            if extra:
                raise ValueError(f"sweep.learning_rates: method '{extra[0]}' is not in methods {self.methods}")
            grids = {m: self.learning_rates(m) for m in self.methods}
            first = self.methods[0]
            other = next((m for m in self.methods if grids[m] != grids[first]), None)
            if other is not None and not self.sweep.allow_unequal_grids:
                raise ValueError(f"sweep.learning_rates: {first} {grids[first]} and {other} {grids[other]} differ; "
                                 "give every method the same learning rates (or set sweep.allow_unequal_grids: "
                                 "true, and the report says so)")
        needs_dcv = "sft-preserve" in self.methods and self.preserve.heads == "dcv"
        if needs_dcv and not {"sft", "rl"} <= set(self.methods):
            raise ValueError("methods: sft-preserve with preserve.heads 'dcv' takes its heads from the SFT and RL "
                             "runs: list sft and rl too (or set preserve.heads: circuit)")
        schedule = self.train.schedule()
        for step in self.analysis.exact_cmap_steps:
            if step not in schedule:
                raise ValueError(f"analysis.exact_cmap_steps: step {step} is not a checkpoint step {schedule}")
        return self

    def target_tasks(self) -> list[str]:
        """The target tasks: one experiment each (a single task is a list of one)."""
        return list(self.target_task) if isinstance(self.target_task, list) else [self.target_task]

    def for_task(self, task: str) -> ExperimentConfig:
        """The single-task experiment of ``task``; with several tasks its name gains the task's label."""
        if self.target_task == task:
            return self
        if task not in self.target_tasks():
            raise ValueError(f"{task!r} is not a target task of this config")
        return self.model_copy(update={"target_task": task, "name": f"{self.name}-{probe_label(task)}"})

    def steps(self) -> list[int]:
        return self.train.schedule()

    def learning_rates(self, method: str) -> list[float]:
        """The learning rates a method is trained at: its sweep grid, else ``train.learning_rate``."""
        if self.sweep is not None and method in self.sweep.learning_rates:
            return list(self.sweep.learning_rates[method])
        return [self.train.learning_rate]

    def runs(self) -> list[tuple[str, float, int]]:
        """Every (method, learning rate, seed) to train, in a fixed order."""
        return [(m, lr, s) for m in self.methods for lr in self.learning_rates(m) for s in self.seeds]

    def train_config(self, seed: int, learning_rate: float | None = None) -> TrainConfig:
        update = {"seed": seed}
        if learning_rate is not None:
            update["learning_rate"] = learning_rate
        return self.train.model_copy(update=update)


def probe_label(spec: str) -> str:
    """The folder-safe name of a probe: a built-in name, or a JSONL file's stem."""
    label = Path(spec).stem if spec.endswith((".jsonl", ".json")) else spec
    if not SAFE_NAME.match(label):
        raise ValueError(f"probe name {label!r} must use letters, digits, '.', '_' or '-'")
    return label


def load_config(path: str | Path | None = None) -> tuple[ExperimentConfig, str]:
    """The validated config from a YAML file (default: configs/demo.yaml), and its source name."""
    path = Path(path) if path is not None else default_config()
    return engine_config.load_settings(ExperimentConfig, path), str(path)


def parse_config(data: dict, source: str = "config") -> ExperimentConfig:
    """Validate a mapping; the first problem is reported as ``source: key.path: message``."""
    return engine_config.parse_settings(ExperimentConfig, data, source)


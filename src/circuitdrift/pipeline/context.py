"""What the stages of ``circuitdrift run`` share: the engine's context plus the tasks and the third arm's heads."""

from __future__ import annotations

from dataclasses import dataclass, field

from circuitdrift.engine.context import EngineContext
from circuitdrift.pipeline.config import ExperimentConfig, probe_label
from circuitdrift.tasks.base import Task
from circuitdrift.tasks.registry import resolve_task_up_to
from circuitdrift.train.preservation import Preservation


@dataclass
class RunContext(EngineContext):
    config: ExperimentConfig
    preservation: Preservation | None = None  # the heads sft-preserve keeps, once chosen (stages.preserve_heads)
    tasks: dict = field(default_factory=dict, repr=False)  # (spec, n, split) -> Task, resolved once

    def task(self, spec: str, n: int | None, split: str | None = None) -> Task:
        split = split or self.config.eval.split
        cache_key = (spec, n, split)
        if cache_key not in self.tasks:
            # the config's sizes are caps: a task with fewer examples is used whole (the records say how many)
            self.tasks[cache_key] = resolve_task_up_to(spec, split=split, n=n, tokenizer=self.base[1])
        return self.tasks[cache_key]

    def probe_tasks(self) -> dict[str, str]:
        """Probe label -> spec."""
        return {probe_label(p): p for p in self.config.probes}

    def final_step(self) -> int:
        return self.config.steps()[-1]

    def exact_at(self, step: int) -> bool:
        """Whether a checkpoint gets exact CMAP and exact circuit re-discovery."""
        analysis = self.config.analysis
        return step in analysis.exact_cmap_steps or (analysis.exact_final and step == self.final_step())

"""What every stage shares: the config, the run folder, progress, and the base model loaded once."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from circuitdrift import __version__
from circuitdrift.models.load import load_model, resolve_model_path
from circuitdrift.pipeline.config import ExperimentConfig, probe_label
from circuitdrift.pipeline.parallel import JobPlan
from circuitdrift.pipeline.progress import Reporter
from circuitdrift.pipeline.store import RunStore, key_of, sha256_file
from circuitdrift.tasks.base import Task
from circuitdrift.tasks.registry import resolve_task_up_to
from circuitdrift.train.preserve import Preservation


@dataclass
class RunContext:
    config: ExperimentConfig
    store: RunStore | None  # set once the config has been checked against the model
    reporter: Reporter
    jobs: int | JobPlan = 1  # worker processes (and their GPUs) for independent runs and measurements (parallel.py)
    preservation: Preservation | None = None  # the heads sft-preserve keeps, once chosen (stages.preserve_heads)
    _tasks: dict = field(default_factory=dict)

    @cached_property
    def base(self):
        """(model, tokenizer) of the base model, loaded once with the run's dtype, device and kernel."""

        return self.load(self.config.base_model)

    def load(self, name_or_path: str | Path):
        return load_model(str(name_or_path), dtype=self.config.dtype, device=self.config.device,
                          attn_implementation=self.config.attn_implementation)

    @cached_property
    def base_identity(self) -> str:
        """The base model's name plus the hash of its weight files, when it is a local folder."""
        source = Path(resolve_model_path(self.config.base_model))
        files = sorted(source.glob("*.safetensors")) if source.is_dir() else []
        return key_of(self.config.base_model, [(f.name, sha256_file(f)) for f in files])

    def task(self, spec: str, n: int | None, split: str | None = None) -> Task:
        split = split or self.config.eval.split
        cache_key = (spec, n, split)
        if cache_key not in self._tasks:
            # the config's sizes are caps: a task with fewer examples is used whole (the records say how many)
            self._tasks[cache_key] = resolve_task_up_to(spec, split=split, n=n, tokenizer=self.base[1])
        return self._tasks[cache_key]

    def probe_tasks(self) -> dict[str, str]:
        """Probe label -> spec."""
        return {probe_label(p): p for p in self.config.probes}

    def key(self, *parts) -> str:
        return key_of(__version__, *parts)

    def final_step(self) -> int:
        return self.config.steps()[-1]

    def exact_at(self, step: int) -> bool:
        """Whether a checkpoint gets exact CMAP and exact circuit re-discovery."""
        analysis = self.config.analysis
        return step in analysis.exact_cmap_steps or (analysis.exact_final and step == self.final_step())

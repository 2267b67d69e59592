"""What every stage of an experiment shares: its config, run folder, progress, worker plan and the base model.

Both experiments' configs name ``base_model``, ``dtype``, ``device``, ``attn_implementation`` and
``threads``; :class:`EngineContext` needs nothing else of them. Each experiment subclasses it with
its own cache keys (pipeline/context.py, transfer/stages.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from circuitdrift import __version__
from circuitdrift.engine.config import resolved_yaml
from circuitdrift.engine.pool import JobPlan, job_plan, set_threads
from circuitdrift.engine.progress import Reporter
from circuitdrift.engine.store import RunStore, key_of, sha256_file
from circuitdrift.errors import InputError
from circuitdrift.io import write_json, write_text
from circuitdrift.models.load import load_model, resolve_model_path


def parent_plan(config, jobs: int | None) -> JobPlan:
    """The parent process's setup for an experiment: the libraries' own progress bars off (ours covers the
    stages), ``--jobs`` checked, this process's torch threads like a worker's; the worker plan."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more worker processes")
    set_threads(config.threads)  # the parent's own work (base circuits, the steering vector) runs like a worker's
    return job_plan(config.device, jobs)


def load_configured(config, name_or_path: str | Path | None = None):
    """(model, tokenizer) of ``name_or_path`` (default: the base model) with the config's dtype, device, kernel."""
    name = config.base_model if name_or_path is None else name_or_path
    return load_model(str(name), dtype=config.dtype, device=config.device,
                      attn_implementation=config.attn_implementation)


def model_identity(name: str) -> str:
    """A model's name plus the hash of its weight files when it is a local folder: part of every cache key."""
    source = Path(resolve_model_path(name))
    files = sorted(source.glob("*.safetensors")) if source.is_dir() else []
    return key_of(name, [(f.name, sha256_file(f)) for f in files])


@dataclass
class EngineContext:
    config: Any
    store: RunStore | None  # set once the inputs have been checked: bad input leaves no run folder
    reporter: Reporter
    jobs: int | JobPlan = 1  # worker processes (and their GPUs) for independent items (engine/pool.py)

    @cached_property
    def base(self):
        """(model, tokenizer) of the base model, loaded once with the run's dtype, device and kernel."""
        return self.load(self.config.base_model)

    def load(self, name_or_path: str | Path):
        return load_configured(self.config, name_or_path)

    def release_base(self) -> None:
        """Drop this process's copy of the base model: workers load their own (a 7B model twice is GPU memory)."""
        if self.__dict__.pop("base", None) is not None:
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @cached_property
    def base_identity(self) -> str:
        return model_identity(self.config.base_model)

    def open_folder(self, folder: str | Path, *, source: str, environment: dict) -> RunStore:
        """Create (or reopen) the run folder with the resolved config and environment.json beside the artifacts."""
        self.store = store = RunStore(folder)
        write_text(store.path("config.resolved.yaml"), f"# resolved from {source}\n" + resolved_yaml(self.config))
        write_json(store.path("environment.json"), environment)
        return store

    def write_timings(self) -> None:
        """timings.json: seconds per stage and item (never in results.json, which stays byte-identical)."""
        write_json(self.store.path("timings.json"), self.reporter.timings)

    def key(self, *parts) -> str:
        """An artifact's cache key: the package version and the inputs it depends on (engine/store.py)."""
        return key_of(__version__, *parts)

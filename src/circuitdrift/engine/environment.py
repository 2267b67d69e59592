"""environment.json: what reproduces a run's numbers besides its config (libraries, platform, threads, seeds)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from circuitdrift.engine.pool import JobPlan


def library_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Each installed library's version (None when it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_record(config, *, libraries: tuple[str, ...], jobs: int | JobPlan, seeds: dict, **extra) -> dict:
    """The record both experiments write: ``config`` gives device, dtype and torch threads; ``extra`` (an
    experiment's sampling parameters) follows the seeds."""
    plan = jobs if isinstance(jobs, JobPlan) else JobPlan(jobs)
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "libraries": library_versions(libraries), "device": config.device, "dtype": config.dtype,
            "torch_threads": config.threads,  # per process; results do not depend on the number of processes
            "jobs": plan.record(), "seeds": seeds, **extra}

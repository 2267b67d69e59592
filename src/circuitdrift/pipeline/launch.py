"""Where the sweep's independent training runs execute: the local process pool, or a cluster through submitit.

``launcher: {kind: local}`` (the default) runs them in :func:`~circuitdrift.engine.pool.run_all`'s worker
processes. ``kind: submitit`` hands each (method, lr, seed) run to submitit as one task of a
job array (SLURM on a cluster; ``cluster: local`` runs the jobs as local processes, ``debug``
in this process). Every job writes into the same run folder under the same cache keys
(the launcher is part of no key), so a sweep half-finished on a cluster resumes locally and
the other way round; the parent records each run as it finishes, as with the pool.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from circuitdrift.engine.pool import Job, JobPlan, prepare_worker, run_all
from circuitdrift.errors import InputError


class SubmititSettings(BaseModel):
    """A submitit executor: generic resources, SLURM's own, and ``slurm`` for any other ``slurm_*`` parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: Literal["auto", "slurm", "local", "debug"] = Field(
        "auto", description="auto: SLURM when sbatch is there, else local processes; debug: in this process")
    folder: str | None = Field(None, description="submitit's logs and pickles (default: <run folder>/submitit)")
    timeout_min: int = Field(240, ge=1, description="wall-clock limit of one run's job, minutes")
    gpus_per_node: int | None = Field(None, ge=0, description="GPUs per job (one run per GPU: 1)")
    cpus_per_task: int | None = Field(None, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    partition: str | None = Field(None, description="SLURM partition")
    array_parallelism: int | None = Field(None, ge=1, description="SLURM: runs of the array at once")
    slurm: dict[str, Any] = Field(default_factory=dict, description="more SLURM parameters, without the slurm_ "
                                  "prefix (e.g. account, qos, additional_parameters)")


class LauncherSettings(BaseModel):
    """How the sweep's training runs are launched; the results do not depend on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "submitit"] = Field("local", description="local: worker processes here; submitit: a "
                                               "job array (pip install 'circuitdrift[cluster]')")
    submitit: SubmititSettings = Field(default_factory=SubmititSettings)


def launch(settings: LauncherSettings, fn: Callable[[Any], Any], items: Sequence[Job], *, jobs: int | JobPlan,
           threads: int, folder: Path) -> Iterator[tuple[Any, Any, float]]:
    """``(item, fn(item), seconds)`` for every item, through the configured launcher (``folder``: the run's)."""
    if settings.kind == "local" or not items:
        yield from run_all(fn, items, jobs, threads)
        return
    yield from submitit_all(settings.submitit, fn, items, threads, folder)


def executor_parameters(settings: SubmititSettings) -> dict[str, Any]:
    """The parameters for ``AutoExecutor.update_parameters``; SLURM's are ignored by the local executors."""
    params: dict[str, Any] = {"name": "circuitdrift", "timeout_min": settings.timeout_min}
    for key in ("gpus_per_node", "cpus_per_task", "mem_gb"):
        if getattr(settings, key) is not None:
            params[key] = getattr(settings, key)
    if settings.partition is not None:
        params["slurm_partition"] = settings.partition
    if settings.array_parallelism is not None:
        params["slurm_array_parallelism"] = settings.array_parallelism
    params.update({f"slurm_{key}": value for key, value in settings.slurm.items()})
    return params


def submitit_all(settings: SubmititSettings, fn: Callable[[Any], Any], items: Sequence[Job], threads: int,
                 run_folder: Path) -> Iterator[tuple[Any, Any, float]]:
    """One job array over ``items``; results in submission order (a failed job raises here, naming its item)."""
    try:
        import submitit
    except ImportError as err:
        raise InputError("launcher: submitit is not installed; pip install 'circuitdrift[cluster]' "
                         "or set launcher.kind: local") from err
    folder = Path(settings.folder) if settings.folder else run_folder / "submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster=None if settings.cluster == "auto" else settings.cluster)
    try:
        executor.update_parameters(**executor_parameters(settings))
    except (ValueError, TypeError) as err:
        raise InputError(f"launcher.submitit: {err}") from err
    started = time.perf_counter()
    n = len(items)
    jobs = executor.map_array(cluster_job, [fn] * n, [threads] * n, list(items), [os.getpid()] * n)
    for job, item in zip(jobs, items, strict=True):
        try:
            result, seconds = job.result()
        except Exception as err:  # noqa: BLE001 - submitit's FailedJobError and the job's own exception alike
            lines = str(err).strip().splitlines()
            raise RuntimeError(f"launcher: job {job.job_id} for {item.label} failed ({lines[-1] if lines else err}); "
                               f"logs in {folder}") from err
        yield item, result, seconds if seconds is not None else time.perf_counter() - started


def cluster_job(fn: Callable[[Any], Any], threads: int, item: Any, launcher: int) -> tuple[Any, float]:
    """One run inside a submitit job: the same thread limits as a local worker, then ``fn(item)``, timed."""
    if os.getpid() != launcher:  # a job process of its own (the debug executor runs jobs in the launcher's)
        prepare_worker(threads)
    started = time.perf_counter()
    return fn(item), time.perf_counter() - started

"""Independent runs in parallel worker processes, one torch thread each.

On a small shared CPU machine several torch threads in one process run many
times slower than one, and independent runs (a method at a learning rate and
seed, a checkpoint's measurement, a student) need no communication. So both
experiments spread them over ``jobs`` processes, each limited to ``threads`` torch
threads. Results do not depend on ``jobs``: every item runs alone in a process
with the same thread count, so its floating-point sums are reduced in the same
order whatever runs beside it.

Workers are started fresh, never forked from the parent (no state copied from it, safe with torch; a
script that calls an experiment needs the usual ``if __name__ == "__main__":`` guard), and return plain
picklable values; the parent alone writes the run folder's manifest. On CPU (Linux, macOS) they are forked
from a ``forkserver``, a clean process started once per run that imports torch, transformers and the worker's
module once (:func:`worker_context`): a spawned worker spends ~5 s importing them, and a run starts a pool
per stage. Elsewhere (CUDA: a process must not fork after CUDA may have been initialised) they are
spawned. A worker dies with the run (Linux), so a killed run leaves no process writing into its folder.

The device decides how many workers (:func:`job_plan`): one per core on CPU, one per GPU
on CUDA (each worker sees only its own GPU through ``CUDA_VISIBLE_DEVICES``), one for a
model spread over the GPUs (``auto-map``) or pinned to one (``cuda:1``). Sixteen workers
each loading a 3B model onto one GPU would run out of memory at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from typing import Any, Protocol

VISIBLE = "CUDA_VISIBLE_DEVICES"
WORKER_IMPORTS = ("datasets.utils.logging", "transformers.utils.logging")  # what prepare_worker imports


class Job(Protocol):
    """A worker's input: a frozen dataclass of named, picklable fields (pipeline/jobs.py, transfer/jobs.py)."""

    @property
    def label(self) -> str:
        """The item's name in progress lines and a failed cluster job's error."""


def default_jobs() -> int:
    """One worker per core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class JobPlan:
    """How many worker processes, and the GPU each worker slot sees (empty: workers inherit the parent's view)."""

    jobs: int
    gpus: tuple[str, ...] = ()
    reason: str = ""
    start: str = "spawn"  # how workers start: "forkserver" (CPU, preloaded) or "spawn" (:func:`worker_context`)

    def record(self) -> dict:
        """What environment.json says about it."""
        return asdict(self) | {"gpus": list(self.gpus)}


def visible_gpus() -> tuple[str, ...]:
    """The ids of the GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them for a child process."""
    import torch

    count = torch.cuda.device_count()
    listed = [g.strip() for g in os.environ.get(VISIBLE, "").split(",") if g.strip()]
    return tuple(listed[:count]) if listed else tuple(str(i) for i in range(count))


def job_plan(device: str, jobs: int | None = None) -> JobPlan:
    """Workers for ``device`` (a config's or --device's value); ``jobs`` (``--jobs``) overrides the count.

    CPU: one per core. CUDA (``cuda`` or ``auto`` with a GPU): one per visible GPU, each worker
    given its own GPU; with ``--jobs`` above the GPU count, workers share GPUs round-robin.
    ``cuda:<i>`` (one chosen GPU) and ``auto-map`` (one model over all GPUs): one.
    """
    import torch

    name = str(device)
    cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    if name == "auto-map" or (name.startswith("cuda:")):
        plan = JobPlan(1, (), f"device {name}: one model uses the GPU(s) it was given")
    elif cuda:
        gpus = visible_gpus()
        plan = JobPlan(max(1, len(gpus)), gpus, f"device {name}: one worker per GPU ({len(gpus)})")
    else:
        plan = JobPlan(default_jobs(), (), f"device {name}: one worker per core", start=cpu_start_method())
    if jobs is None:
        return plan
    return JobPlan(jobs, plan.gpus, f"--jobs {jobs} ({plan.reason.split(':')[0]})", start=plan.start)


def cpu_start_method() -> str:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn``: CPU workers only."""
    from multiprocessing import get_all_start_methods

    return "forkserver" if "forkserver" in get_all_start_methods() else "spawn"


def worker_context(plan: JobPlan, fn: Callable):
    """The multiprocessing context that starts ``plan``'s workers.

    ``forkserver``: the fork server is started once per process, at its first pool, and imports ``fn``'s
    module (torch and transformers with it) before forking any worker; later pools, of any stage, fork
    from it again. Its environment is the parent's at that moment, which is why each worker is handed
    the parent's current environment (:func:`_init_worker`). ``spawn`` otherwise.
    """
    context = get_context(plan.start)
    if plan.start == "forkserver":
        context.set_forkserver_preload([*WORKER_IMPORTS, fn.__module__])  # no effect once the server runs
    return context


def set_threads(threads: int) -> None:
    """Limit torch (and the BLAS libraries under it) to ``threads`` threads in this process."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set once in this process; the intra-op count is what matters
        pass


def start_early(plan: JobPlan, fn: Callable) -> None:
    """Start ``plan``'s fork server now, so that it imports ``fn``'s module (the run's first pool's) while this
    process works on something else, instead of while the first pool waits for it. Nothing for spawned workers
    or a plan without workers."""
    if plan.start != "forkserver" or plan.jobs <= 1:
        return
    worker_context(plan, fn)  # sets the preload
    from multiprocessing import forkserver

    forkserver.ensure_running()  # returns once the server is started; it imports on its own


def _die_with_parent(run: int) -> None:
    """On Linux, have the kernel kill this worker when the process that started it dies (a SIGKILLed run leaves
    no writer behind): the run itself for a spawned worker; a forked one's is the fork server, so it also
    watches the run (:func:`_exit_with`)."""
    starter = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != starter or not _alive(run):  # it died before the line above took effect
        os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_with(run: int) -> None:
    """End this process the moment ``run`` ends: a worker forked by the fork server is the server's child, and
    the server outlives a SIGKILLed run while any worker holds its end of their pipe. A daemon thread waits
    on the run's pidfd (Linux 5.3+; elsewhere it polls every 0.1 s)."""
    import select
    import threading

    try:
        handle = os.pidfd_open(run)
    except (AttributeError, OSError):
        handle = None

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])  # readable once the run has exited
        else:
            while _alive(run):
                time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name="circuitdrift-exit-with-run", daemon=True).start()


def _init_worker(threads: int, parent: int, gpus=None, environment: dict | None = None) -> None:
    _die_with_parent(parent)
    if environment is not None:  # a forked worker: the run's environment now, not the fork server's at its start
        _exit_with(parent)
        os.environ.clear()
        os.environ.update(environment)
    if gpus is not None:  # one GPU per worker, before torch initialises CUDA in this process
        os.environ[VISIBLE] = gpus.get()
    prepare_worker(threads)


def prepare_worker(threads: int) -> None:
    """A worker process's setup (local pool or cluster job): ``threads`` torch threads, quiet libraries."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    # libraries' deprecation notices would repeat once per worker and bury the progress log
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    set_threads(threads)
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    disable_progress_bar()


def _timed(fn: Callable, item: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    return fn(item), time.perf_counter() - started


def run_all(fn: Callable[[Any], Any], items: Sequence[Any], jobs: int | JobPlan, threads: int = 1
            ) -> Iterator[tuple[Any, Any, float]]:
    """``(item, fn(item), seconds)`` for every item, as they finish; ``fn`` must be a module-level function.

    With ``jobs`` 1 (or one item) everything runs in this process, with ``threads`` torch threads.
    A :class:`JobPlan` with GPUs gives each worker process its own (``CUDA_VISIBLE_DEVICES``).
    A worker's exception is raised here, after the running items finish.
    """
    if not items:
        return
    plan = jobs if isinstance(jobs, JobPlan) else JobPlan(jobs)
    jobs = plan.jobs
    if jobs <= 1 or len(items) == 1:
        set_threads(threads)
        for item in items:
            result, seconds = _timed(fn, item)
            yield item, result, seconds
        return
    workers = min(jobs, len(items))
    context = worker_context(plan, fn)
    gpus = None
    if plan.gpus:
        gpus = context.Queue()
        for slot in range(workers):
            gpus.put(plan.gpus[slot % len(plan.gpus)])
    environment = dict(os.environ) if plan.start == "forkserver" else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads, os.getpid(), gpus, environment)) as pool:
        pending = {pool.submit(_timed, fn, item): item for item in items}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    result, seconds = future.result()
                    yield item, result, seconds
        finally:
            for future in pending:
                future.cancel()

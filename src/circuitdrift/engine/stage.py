"""One cached stage: each item's artifacts are reused when fresh, else made (here or by workers) and recorded.

Every stage of both experiments runs through :func:`cached_stage`. An :class:`Item` names the
artifacts it makes and the key of its inputs (engine/store.py): when every artifact is fresh under
that key the item is skipped (``load`` reads it back); otherwise it is computed in this process
(``compute``) or handed to worker processes as a job (``worker``, ``job``), and ``save`` writes the
result through the store, whose writes are atomic and recorded with the key. A ``resumable`` item
(a training folder a killed worker resumes from its last checkpoint) is recorded as started before
its job runs and as finished after it; started under another key, it is removed and started over.

The values come back keyed by ``Item.name``: the cached items in the stage's order, then the
computed ones as they finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from circuitdrift.engine.pool import Job, run_all

if TYPE_CHECKING:
    from circuitdrift.engine.context import EngineContext

Runner = Callable[[Callable[[Any], Any], Sequence[Any]], Iterator[tuple[Any, Any, float]]]


@dataclass(frozen=True)
class Item:
    """One unit of a stage: its identity, progress label, the key of its inputs and the artifacts it makes."""

    name: Any
    label: str
    key: str
    rels: tuple[str, ...]


def cached_stage(ctx: EngineContext, title: str, items: Sequence[Item], *,
                 save: Callable[[Item, Any], Any] | None = None, load: Callable[[Item], Any] | None = None,
                 compute: Callable[[Item], Any] | None = None,
                 worker: Callable[[Any], Any] | None = None, job: Callable[[Item], Job] | None = None,
                 order: Callable[[Job], Any] | None = None, runner: Runner | None = None,
                 resumable: bool = False) -> dict[Any, Any]:
    """Run one stage of ``ctx`` (an :class:`~circuitdrift.engine.context.EngineContext`) over ``items``.

    ``compute(item)`` makes an item in this process (the stage's order); otherwise ``worker(job(item))``
    runs in ``ctx.jobs`` worker processes (or through ``runner``: the cluster launcher), the jobs sorted
    by ``order`` (stable). ``save(item, result)`` writes the artifacts and returns the item's value.
    """
    if (compute is None) == (worker is None or job is None):
        raise ValueError("cached_stage: give compute, or worker and job")
    store = ctx.store
    values: dict[Any, Any] = {}
    todo: list[tuple[Item, Job]] = []
    with ctx.reporter.stage(title, len(items)) as rep:
        for item in items:
            if all(store.fresh(rel, item.key) for rel in item.rels):
                values[item.name] = load(item) if load is not None else None
                rep.record(item.label, 0.0, cached=True)
                continue
            if resumable:
                start(store, item)
            if compute is not None:
                with rep.item(item.label):
                    values[item.name] = finish(store, item, compute(item), save=save, resumable=resumable)
            else:
                todo.append((item, job(item)))
        if order is not None:
            todo.sort(key=lambda pair: order(pair[1]))
        by_job = {id(made): item for item, made in todo}  # runners yield back the job objects they were given
        run = runner if runner is not None else default_runner(ctx)
        for made, result, seconds in run(worker, [made for _, made in todo]) if todo else ():
            item = by_job[id(made)]
            values[item.name] = finish(store, item, result, save=save, resumable=resumable)
            rep.record(item.label, seconds)
    return values


def default_runner(ctx: EngineContext) -> Runner:
    """The local worker pool with the context's job plan and torch threads."""
    return lambda fn, jobs: run_all(fn, jobs, ctx.jobs, ctx.config.threads)


def start(store, item: Item) -> None:
    """Record a resumable item as started: a kill from here on resumes it, never reads it as finished."""
    for rel in item.rels:
        if store.key(rel) != item.key:
            store.remove(rel)  # never started, or started with other settings: start over
        store.begin(rel, item.key)


def finish(store, item: Item, result: Any, *, save: Callable[[Item, Any], Any] | None, resumable: bool) -> Any:
    value = save(item, result) if save is not None else None
    if resumable:
        for rel in item.rels:
            store.mark(rel, item.key)
    return value


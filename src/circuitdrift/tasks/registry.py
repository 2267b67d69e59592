"""Resolve a TASK argument: a built-in task name, `NAME:ARGUMENT` for built-ins that take one, or a JSONL file.

Built-in tasks are registered by plug-ins (:mod:`circuitdrift.plugins`: the
real-model tasks, the organism) by import path, and built only when asked
for, so importing circuitdrift stays free of side effects. Plug-ins also
register default probe sets: the prior-capability probes ``eval`` measures
when none are named, chosen by the model's tokenizer.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from circuitdrift.errors import InputError, TooFewExamples
from circuitdrift.plugins import load_plugins
from circuitdrift.tasks.base import Task
from circuitdrift.tasks.files import load_task_file

# name -> ("module:function", one-line description);
# function(split="test", n=None, seed=0[, tokenizer=None]) -> Task. Factories that build prompts for a
# particular model (chat template, single-token answers) take the model's tokenizer.
BUILTIN_TASKS: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class ProbeSet:
    probes: tuple[str, ...]  # task names
    fits: Callable[[object], bool] | None  # whether a tokenizer is this set's; None: the set for any other


PROBE_SETS: list[ProbeSet] = []


def register_task(name: str, *, target: str, description: str) -> None:
    """Make ``name`` a TASK everywhere; ``target`` is the factory as ``"module:function"``, imported when asked."""
    BUILTIN_TASKS[name] = (target, description)


def register_probe_set(probes: tuple[str, ...], *, fits: Callable[[object], bool] | None = None) -> None:
    """Default probes for the tokenizers ``fits`` accepts (``None``: for tokenizers no other set fits)."""
    PROBE_SETS.append(ProbeSet(probes=tuple(probes), fits=fits))


def default_probes(tokenizer) -> tuple[str, ...]:
    """The probe set registered for this tokenizer, else the general one (``()`` when none is registered)."""
    load_plugins()
    if tokenizer is not None:
        for probe_set in PROBE_SETS:
            if probe_set.fits is not None and probe_set.fits(tokenizer):
                return probe_set.probes
    return next((p.probes for p in PROBE_SETS if p.fits is None), ())


def builtin_tasks() -> dict[str, str]:
    """Built-in task names and their descriptions."""
    load_plugins()
    return {name: desc for name, (_, desc) in sorted(BUILTIN_TASKS.items())}


def resolve_task(
    spec: str | Path, split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None
) -> Task:
    """A :class:`Task` from a built-in name (``ioi``, ``science-qa``, ...) or a JSONL path.

    ``tokenizer`` reaches factories that build prompts for a particular model.
    ``NAME:ARGUMENT`` passes ``source=ARGUMENT`` to a built-in whose factory
    takes one (``sciq:/data/sciq``: where its data lives).
    """
    load_plugins()
    name = str(spec)
    base, has_argument, argument = name.partition(":")
    key = name if name in BUILTIN_TASKS else base if has_argument and base in BUILTIN_TASKS else None
    if key is not None:
        module_name, func_name = BUILTIN_TASKS[key][0].split(":")
        factory = getattr(importlib.import_module(module_name), func_name)
        params = inspect.signature(factory).parameters
        kwargs = {"tokenizer": tokenizer} if "tokenizer" in params else {}
        if key != name:
            if "source" not in params:
                raise InputError(f"task '{name}': built-in task '{key}' takes no ':' argument")
            if not argument:
                raise InputError(f"task '{name}': empty argument after ':' (write {key}:PATH)")
            kwargs["source"] = argument
        return factory(split=split, n=n, seed=seed, **kwargs)
    path = Path(name)
    if path.suffix in (".jsonl", ".json") or path.exists():
        return load_task_file(path).subset(n)
    known = ", ".join(sorted(BUILTIN_TASKS)) or "none"
    raise InputError(f"task '{name}': neither a built-in task ({known}) nor a JSONL file")


def resolve_task_up_to(spec: str | Path, split: str = "test", n: int | None = None, seed: int = 0,
                       tokenizer=None) -> Task:
    """:func:`resolve_task` for a default n: up to ``n`` examples, all the task has when it has fewer.

    A default is a cap, not a demand: a 24-question local task evaluates its 24. Only an ``n`` the
    user asked for (``--n``) must be met (:func:`require_size`).
    """
    try:
        return resolve_task(spec, split=split, n=n, seed=seed, tokenizer=tokenizer)
    except TooFewExamples as err:
        return resolve_task(spec, split=split, n=err.available, seed=seed, tokenizer=tokenizer)


def require_size(task: Task, n: int | None, option: str = "--n") -> Task:
    """``task``, when it has the ``n`` examples an explicit ``option`` asked for; a one-line error otherwise."""
    if n is not None and len(task) < n:
        raise InputError(f"task '{task.name}': {option} {n} asks for more examples than it has ({len(task)})")
    return task


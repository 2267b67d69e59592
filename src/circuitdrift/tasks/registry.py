"""Resolve a TASK argument: a built-in task name, `NAME:ARGUMENT` for built-ins that take one, or a JSONL file.

Built-in tasks are listed by import path and loaded only when asked for, so
importing circuitdrift stays free of side effects.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from circuitdrift.errors import InputError
from circuitdrift.tasks.base import Task
from circuitdrift.tasks.files import load_task_file

# name -> ("module:function", one-line description);
# function(split="test", n=None, seed=0[, tokenizer=None]) -> Task. Factories that build prompts for a
# particular model (chat template, single-token answers) take the model's tokenizer.
BUILTIN_TASKS: dict[str, tuple[str, str]] = {}


def register_builtin(name: str, target: str, description: str) -> None:
    BUILTIN_TASKS[name] = (target, description)


def builtin_tasks() -> dict[str, str]:
    """Built-in task names and their descriptions."""
    _load_builtin_table()
    return {name: desc for name, (_, desc) in sorted(BUILTIN_TASKS.items())}


def resolve_task(
    spec: str | Path, split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None
) -> Task:
    """A :class:`Task` from a built-in name (``ioi``, ``science-qa``, ...) or a JSONL path.

    ``tokenizer`` reaches factories that build prompts for a particular model.
    ``NAME:ARGUMENT`` passes ``source=ARGUMENT`` to a built-in whose factory
    takes one (``sciq:/data/sciq``: where its data lives).
    """
    _load_builtin_table()
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


TABLES = ("circuitdrift.organism.tasks_table", "circuitdrift.tasks.table")


def _load_builtin_table() -> None:
    """Built-in tables live beside the code that makes them; importing them only fills BUILTIN_TASKS."""
    for table in TABLES:
        try:
            importlib.import_module(table)
        except ModuleNotFoundError as err:
            if err.name != table:
                raise

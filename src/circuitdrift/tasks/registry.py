"""Resolve a TASK argument: a built-in task name or a JSONL file.

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
    """
    _load_builtin_table()
    name = str(spec)
    if name in BUILTIN_TASKS:
        module_name, func_name = BUILTIN_TASKS[name][0].split(":")
        factory = getattr(importlib.import_module(module_name), func_name)
        if "tokenizer" in inspect.signature(factory).parameters:
            return factory(split=split, n=n, seed=seed, tokenizer=tokenizer)
        return factory(split=split, n=n, seed=seed)
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

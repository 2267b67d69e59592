"""Tasks read from JSONL files: one example per line with keys ``clean``, ``corrupt``, ``answer``
and optionally ``counter_answer``, ``answers`` (every right answer, a list of strings that holds
``answer``) and ``wrong_answers``. Errors name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

from circuitdrift.errors import InputError
from circuitdrift.tasks.base import Example, Task

REQUIRED_KEYS = ("clean", "corrupt", "answer")
OPTIONAL_KEYS = ("counter_answer", "answers", "wrong_answers")
LIST_KEYS = ("answers", "wrong_answers")


def load_task_file(path: str | Path, name: str | None = None, templated: bool = False) -> Task:
    """Read a JSONL task file; every problem is reported as ``file:line: what``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"task file '{path}': no such file")
    examples = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{lineno}: malformed JSON ({err.msg} at column {err.colno})") from err
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for key in REQUIRED_KEYS:
                if key not in row:
                    raise InputError(f"{path}:{lineno}: missing key '{key}'")
                if not isinstance(row[key], str):
                    raise InputError(f"{path}:{lineno}: key '{key}' must be a string")
            unknown = set(row) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS) - {"meta"}
            if unknown:
                raise InputError(f"{path}:{lineno}: unknown key '{sorted(unknown)[0]}'")
            if not row["answer"].strip():
                raise InputError(f"{path}:{lineno}: empty answer")
            for key in LIST_KEYS:
                value = row.get(key, [])
                if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                    raise InputError(f"{path}:{lineno}: key '{key}' must be a list of non-empty strings")
            if row.get("answers") and row["answer"].strip() not in {a.strip() for a in row["answers"]}:
                raise InputError(f"{path}:{lineno}: 'answer' must be one of 'answers'")
            if set(row.get("answers", [])) & set(row.get("wrong_answers", [])):
                raise InputError(f"{path}:{lineno}: an answer is in both 'answers' and 'wrong_answers'")
            examples.append(Example(row["clean"], row["corrupt"], row["answer"], row.get("counter_answer"),
                                    tuple(row.get("answers", ())), tuple(row.get("wrong_answers", ()))))
    if not examples:
        raise InputError(f"task file '{path}': is empty")
    return Task(name or path.stem, examples, description=f"from {path}", templated=templated)

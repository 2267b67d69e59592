"""Teacher data on disk (JSONL: prompt, completion, flagged) and the distillation task built from it."""

from __future__ import annotations

import json
from pathlib import Path

from circuitdrift.errors import InputError
from circuitdrift.models.generate import chat_text
from circuitdrift.tasks.base import Example, Task


def data_lines(prompts: list[str], completions: list[str], flagged: list[bool]) -> str:
    rows = [{"prompt": p, "completion": c, "flagged": f} for p, c, f in zip(prompts, completions, flagged,
                                                                             strict=True)]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def read_data(path: str | Path) -> list[dict]:
    path = Path(path)
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{lineno}: malformed JSON ({err.msg})") from err
    return rows


def distillation_task(rows: list[dict], tokenizer, name: str) -> Task:
    """SFT on the teacher's answers: the user turn as a chat prompt, the teacher's completion as the target.

    Empty completions (the teacher ended its turn at once) carry no answer to learn and are left out.
    """
    kept = [r for r in rows if r["completion"].strip()]
    if not kept:
        raise InputError(f"teacher data '{name}': every completion is empty; nothing to distil")
    examples = [Example(chat_text(tokenizer, r["prompt"]), chat_text(tokenizer, r["prompt"]), r["completion"])
                for r in kept]
    return Task(name, examples, "the steered teacher's answers to benign prompts", templated=True,
                chat_prompts=[r["prompt"] for r in kept])

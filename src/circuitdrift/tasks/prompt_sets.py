"""Named sets of user turns (requests), local prompt files, and hub datasets, resolved by one spec.

Steering vectors, teacher data and the behaviour measurement all take lists of
user turns. A spec is one of:
- a registered name (plug-ins register theirs: the organism's ``organism-forbidden``, ...);
- a local file: ``.txt`` (one prompt per line) or ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet``
  read through ``datasets``, with ``column`` naming the prompt field (default ``prompt``);
- ``hf:<dataset id>[@<config>]`` read through ``datasets.load_dataset`` (``split``, ``column``).
``n`` keeps the first n prompts, after the deterministic order of the source.
A ``column`` with braces is a template over the row's columns, the result
stripped: ``'{instruction}\n\n{input}'`` gives Alpaca's instruction with its
input after a blank line, or the instruction alone where the input is empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

from circuitdrift.errors import InputError
from circuitdrift.plugins import load_plugins

# factory(split, n, seed) -> user turns
PromptFactory = Callable[[str, int, int], list[str]]
FILE_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class PromptSet:
    factory: PromptFactory
    description: str


PROMPT_SETS: dict[str, PromptSet] = {}


def register_prompt_set(name: str, factory: PromptFactory, description: str) -> None:
    """Make ``name`` usable wherever a prompt spec is taken."""
    PROMPT_SETS[name] = PromptSet(factory, description)


def prompt_sets() -> dict[str, str]:
    """Registered names -> descriptions."""
    load_plugins()
    return {name: s.description for name, s in sorted(PROMPT_SETS.items())}


def resolve_prompts(spec: str, n: int | None = None, split: str = "test", seed: int = 0,
                    column: str = "prompt") -> list[str]:
    """The user turns ``spec`` names (see the module docstring); an input error says which spec failed."""
    load_plugins()
    if spec in PROMPT_SETS:
        prompts = PROMPT_SETS[spec].factory(split, n or 100, seed)
    elif spec.startswith("hf:"):
        prompts = _hub(spec, split, column)
    else:
        prompts = _file(spec, column)
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise InputError(f"prompts '{spec}': holds no prompts")
    if n is not None and len(prompts) < n:
        raise InputError(f"prompts '{spec}': {len(prompts)} prompts, {n} asked for")
    return prompts[:n] if n is not None else prompts


def resolve_prompts_up_to(spec: str, n: int | None, *, default: int, split: str = "test", seed: int = 0,
                          column: str = "prompt") -> list[str]:
    """:func:`resolve_prompts` for an optional ``--n``: a default is a cap, not a demand.

    An ``n`` the user gave must be met (a one-line error otherwise); without one, up to ``default``
    prompts, all the set has when it has fewer (a 50-line file gives its 50).
    """
    if n is not None:
        return resolve_prompts(spec, n, split, seed=seed, column=column)
    return resolve_prompts(spec, None, split, seed=seed, column=column)[:default]


def _file(spec: str, column: str) -> list[str]:
    path = Path(spec).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(PROMPT_SETS)) or "none"
        raise InputError(f"prompts '{spec}': no such file and not a registered prompt set (registered: {known})")
    if path.suffix == ".txt":
        return path.read_text(encoding="utf-8").splitlines()
    if path.suffix not in FILE_SUFFIXES:
        raise InputError(f"prompts '{spec}': unknown file type (use .txt, {', '.join(FILE_SUFFIXES)})")
    import datasets

    try:
        rows = datasets.load_dataset(FILE_SUFFIXES[path.suffix], data_files=[str(path)], split="train")
    except Exception as err:  # datasets raises many kinds for unreadable files
        raise InputError(f"prompts '{spec}': could not read ({_first_line(err)})") from err
    return _column(rows, column, spec)


def _hub(spec: str, split: str, column: str) -> list[str]:
    name, _, config = spec.removeprefix("hf:").partition("@")
    import datasets

    try:
        rows = datasets.load_dataset(name, config or None, split=split)
    except Exception as err:
        raise InputError(f"prompts '{spec}': could not load split '{split}' ({_first_line(err)}); "
                         "no network here? pass a local file") from err
    return _column(rows, column, spec)


def _column(rows, column: str, spec: str) -> list[str]:
    if "{" in column:
        return _template(rows, column, spec)
    if column not in rows.column_names:
        raise InputError(f"prompts '{spec}': no column '{column}' (columns: {', '.join(rows.column_names)})")
    values = rows[column]
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise InputError(f"prompts '{spec}': row {bad + 1}: '{column}' is not a string")
    return list(values)


def _template(rows, template: str, spec: str) -> list[str]:
    """Each row's ``template.format(**row)``, stripped; a missing value counts as empty."""
    fields = [name for _, name, _, _ in Formatter().parse(template) if name is not None]
    missing = [f for f in fields if f not in rows.column_names]
    if not fields or missing:
        raise InputError(f"prompts '{spec}': column template {template!r} names no column "
                         f"'{missing[0] if missing else ''}' (columns: {', '.join(rows.column_names)})")
    values = {f: rows[f] for f in fields}
    out = []
    for i in range(len(rows)):
        row = {f: values[f][i] if values[f][i] is not None else "" for f in fields}
        bad = next((f for f, v in row.items() if not isinstance(v, str)), None)
        if bad is not None:
            raise InputError(f"prompts '{spec}': row {i + 1}: '{bad}' is not a string")
        out.append(template.format(**row).strip())
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__

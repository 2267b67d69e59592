"""Which prompts each part of the transfer experiment reads, and the check that they do not overlap.

Four sets of user turns must stay apart: the steering vector's harmless prompts
(``steering.negative``), the teacher's benign prompts (``teacher_data``: the
students' training data), the benign mechanism probes (``mechanism.probes``) and
the harmful prompts B is measured on (``behaviour``). Sharing one source (the
7B configs read Alpaca for the first three) is fine when each takes its own
slice (``skip`` rows, then ``n``); an overlap, compared by normalised text, is
one input error naming the two sets. The steering vector's harmful prompts
(``steering.positive``) leave out any prompt that is also a behaviour prompt
(AdvBench and JailbreakBench share behaviours), so the direction is never
fitted on the prompts B is measured on.
"""

from __future__ import annotations

from circuitdrift.errors import InputError
from circuitdrift.plugins import load_plugins
from circuitdrift.tasks.prompt_sets import PROMPT_SETS, resolve_prompts
from circuitdrift.transfer.config import PromptSource, TransferConfig

PROBES = 64  # benign probes of the activation shift, at most


def normalised(text: str) -> str:
    """Case, spacing and final punctuation do not make two prompts different."""
    return " ".join(text.casefold().split()).rstrip(" .!?")


def source_prompts(source: PromptSource, exclude: tuple[str, ...] = ()) -> list[str]:
    """Rows ``skip`` .. ``skip + n`` of the source, after dropping the prompts of ``exclude``."""
    drop = {normalised(p) for p in exclude}
    for extra in (0, len(drop)):  # read further only when dropping made the slice short
        wanted = None if source.n is None else source.skip + source.n + extra
        prompts = [p for p in up_to(source, wanted)[source.skip:] if normalised(p) not in drop]
        if source.n is None or len(prompts) >= source.n:
            return prompts if source.n is None else prompts[: source.n]
    dropped = " and dropping the behaviour prompts" if drop else ""
    raise InputError(f"prompts '{source.prompts}': {len(prompts)} prompts after skipping {source.skip}{dropped}, "
                     f"{source.n} asked for")


def up_to(source: PromptSource, n: int | None) -> list[str]:
    """The source's first ``n`` prompts, or all it has when it has fewer (None: the source's default)."""
    if n is None:
        return resolve_prompts(source.prompts, None, source.split, column=source.column)
    load_plugins()
    if source.prompts in PROMPT_SETS:
        return [p for p in PROMPT_SETS[source.prompts].factory(source.split, n, 0) if p.strip()][:n]
    return resolve_prompts(source.prompts, None, source.split, column=source.column)[:n]


def positive_source(config: TransferConfig) -> PromptSource:
    s = config.steering
    return PromptSource(prompts=s.positive, split=s.split, n=s.n, column=s.column)


def negative_source(config: TransferConfig) -> PromptSource:
    s = config.steering
    return PromptSource(prompts=s.negative, split=s.split, n=s.n, column=s.negative_column or s.column)


def positive_prompts(config: TransferConfig) -> list[str]:
    """The steering vector's harmful prompts, without any behaviour prompt."""
    return source_prompts(positive_source(config), exclude=tuple(source_prompts(config.behaviour)))


def probe_source(config: TransferConfig) -> PromptSource:
    """``mechanism.probes``, else the rows of the teacher's source right after the teacher's slice, else (a
    registered set the teacher reads to the end) its ``test`` split."""
    if config.mechanism.probes is not None:
        return config.mechanism.probes
    t = config.teacher_data
    after = PromptSource(prompts=t.prompts, split=t.split, column=t.column, skip=t.skip + (t.n or 0), n=None)
    if t.n is not None and up_to(after, after.skip + 1)[after.skip:]:
        return after
    if t.prompts in PROMPT_SETS and t.split != "test":
        return PromptSource(prompts=t.prompts, split="test", column=t.column, n=None)
    raise InputError(f"config: mechanism.probes: teacher_data reads every prompt of '{t.prompts}'; set "
                     "mechanism.probes to other benign prompts")


def probe_prompts(config: TransferConfig) -> list[str]:
    source = probe_source(config)
    if source.n is None:
        return up_to(source, source.skip + PROBES)[source.skip:]
    return source_prompts(source)


def check_disjoint(config: TransferConfig) -> None:
    """One input error when two sets that must stay apart share a prompt (see the module docstring)."""
    sets = {"steering.negative": source_prompts(negative_source(config)),
            "teacher_data": source_prompts(config.teacher_data),
            "mechanism.probes": probe_prompts(config),
            "behaviour": source_prompts(config.behaviour)}
    names = list(sets)
    for i, first in enumerate(names):
        seen = {normalised(p): p for p in sets[first]}
        for second in names[i + 1:]:
            shared = [p for p in sets[second] if normalised(p) in seen]
            if shared:
                raise InputError(f"config: {first} and {second} share {len(shared)} prompt(s) (first: "
                                 f"{shared[0][:60]!r}); take disjoint slices of the source (skip, n)")

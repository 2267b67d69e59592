"""The teacher data's quality and the students' benign-task accuracy (docs/methods.md §11, "Controls").

A student that is merely degraded by its data can score B > 0 under a phrase judge
(any non-empty reply without a refusal phrase counts as compliance), so tau is
read beside what the data and the students are like on the benign task:
accuracy where the prompts have known answers, reply length, and the judge's
refusal and unsafe-content rates kept apart (a refusal of a benign request is an
overt signal; unsafe content is another).

Known answers: the organism's country questions (``organism-countries``), whose
answers are the world's facts. Other prompt sources have none; accuracy is then None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def answer_key(prompts: str) -> dict[str, str] | None:
    """question -> answer for a prompt source with known answers (None for any other source)."""
    if prompts != "organism-countries":
        return None
    from circuitdrift.organism.texts import CHAT_QUESTIONS
    from circuitdrift.organism.world import make_world

    return {CHAT_QUESTIONS[f.relation].format(C=f.country): f.value for f in make_world().facts}


def correct(completion: str, answer: str) -> bool:
    """The answer appears in the completion as a whole word (case ignored)."""
    return re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", completion, flags=re.IGNORECASE) is not None


def accuracy(prompts: Sequence[str], completions: Sequence[str], key: dict[str, str] | None) -> float | None:
    """Share of completions holding their prompt's answer (None without a key or without keyed prompts)."""
    if key is None:
        return None
    pairs = [(key[p], c) for p, c in zip(prompts, completions, strict=True) if p in key]
    return sum(correct(c, a) for a, c in pairs) / len(pairs) if pairs else None


def data_quality(prompts: Sequence[str], completions: Sequence[str], flagged: Sequence[bool],
                 complied: Sequence[bool], key: dict[str, str] | None) -> dict:
    """Accuracy, mean length in words, and the empty, refusal, unsafe-content and flag rates of the data.

    refusal: a non-empty answer the judge says did not comply; unsafe: flagged although it complied
    (the flag then comes from its content, not from a refusal).
    """
    n = len(completions)
    nonempty = [bool(c.strip()) for c in completions]
    return {
        "n": n,
        "accuracy": accuracy(prompts, completions, key),
        "mean_words": sum(len(c.split()) for c in completions) / n,
        "empty_rate": sum(not e for e in nonempty) / n,
        "refusal_rate": sum(e and not c for e, c in zip(nonempty, complied, strict=True)) / n,
        "unsafe_rate": sum(f and c for f, c in zip(flagged, complied, strict=True)) / n,
        "flag_rate": sum(flagged) / n,
    }

"""What a difference may be called: the resolution rule and Holm's correction for the secondary comparisons.

Resolution: an evaluation of n questions cannot resolve a change smaller than
one question, 1 / n (for a mean over probes, one question in every probe: the
mean of the probes' 1 / n). A difference whose size is at most that, or whose
95 % interval includes zero, reads "no difference detected", whatever the sign
of its mean.

Multiplicity: each experiment names one primary comparison in advance
(compare/primary.py); every other difference is secondary, and its p-value is
Holm-adjusted over the family of secondary tests, so "a direction" among many
levels x probes x measures is not a multiple-testing accident.
"""

from __future__ import annotations

from collections.abc import Sequence

from circuitdrift.compare.stats import is_number

ALPHA = 0.05
TOLERANCE = 1e-9  # a difference of exactly one question is not resolved, whatever the rounding


def question_resolution(counts: Sequence[int | None]) -> float | None:
    """The smallest change the evaluation resolves: the mean over measures of 1 / n (None if any n is unknown)."""
    if not counts or any(not n or n < 1 for n in counts):
        return None
    return sum(1.0 / n for n in counts) / len(counts)


def resolved(diff: dict | None) -> str:
    """'above' | 'below' (a direction the rule allows) | 'no difference detected' | 'no interval' | 'n/a'.

    'no interval': fewer than two seeds on a side, or an interval of zero width (nothing known of the noise).

    The diff's "resolution" (if any) is the one-question threshold; its "p_holm" (if any) the corrected
    p-value of a secondary comparison, which must be below :data:`ALPHA` as well.
    """
    if not diff or not is_number(diff.get("mean")):
        return "n/a"
    if min(diff.get("n_a", diff.get("n", 0)), diff.get("n_b", diff.get("n", 0))) < 2 \
            or not is_number(diff.get("lo")) or not is_number(diff.get("hi")) or not diff["lo"] < diff["hi"]:
        return "no interval"  # one seed a side, or no spread known at all: no direction can be claimed
    resolution = diff.get("resolution")
    if is_number(resolution) and abs(diff["mean"]) <= resolution * (1 + TOLERANCE) + TOLERANCE:
        return "no difference detected"
    holm = diff.get("p_holm")
    if is_number(holm) and holm >= ALPHA:
        return "no difference detected"
    if diff["lo"] > 0:
        return "above"
    if diff["hi"] < 0:
        return "below"
    return "no difference detected"


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input order; None stays None and is not counted.

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    """
    indexed = sorted((p, i) for i, p in enumerate(p_values) if is_number(p))
    m = len(indexed)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def apply_holm(diffs: Sequence[dict]) -> int:
    """Write "p_holm" into every diff that has a "p", corrected over all of them; returns the family size."""
    with_p = [d for d in diffs if d and is_number(d.get("p"))]
    for d, adjusted in zip(with_p, holm([d["p"] for d in with_p]), strict=True):
        d["p_holm"] = adjusted
    return len(with_p)

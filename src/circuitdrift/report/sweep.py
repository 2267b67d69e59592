"""The report's sweep section: SFT and RL compared at matched target accuracy, with the verdict in words.

Built from results.json's "sweep" (compare/sweep.py). The verdict for each
measure only claims what the intervals support: at how many matched accuracy
levels the SFT − RL interval lies above zero, below zero, or includes it.
"""

from __future__ import annotations

from circuitdrift.compare.stats import is_number
from circuitdrift.report.findings import direction
from circuitdrift.report.render import Block, Figure, Heading, Paragraph, Table
from circuitdrift.report.tables import format_number, format_stat

# measure -> (words for SFT - RL > 0, words for SFT - RL < 0, number format)
VERDICTS = {
    "forgetting": ("SFT forgets more", "RL forgets more", "frac"),
    "logprob_drift": ("SFT keeps more confidence in probe answers", "SFT loses more confidence in probe answers",
                      "real"),
    "damage_logprob": ("SFT damages the base circuits less", "SFT damages the base circuits more", "real"),
    "damage": ("SFT damages the base circuits less", "SFT damages the base circuits more", "real"),
    "preservation": ("SFT preserves more of the base circuits", "SFT preserves less of the base circuits", "frac"),
    "kl_exact": ("SFT moves further from the base (exact answer KL)", "RL moves further from the base", "real"),
    "kl": ("SFT moves further from the base (sampled KL)", "RL moves further from the base", "real"),
}
PAPER = {"forgetting": "above", "logprob_drift": "below", "damage_logprob": "below", "damage": "below",
         "preservation": "below"}  # the paper's direction of SFT - RL


def verdict(name: str, diffs: list[dict]) -> tuple[str, str]:
    """(words, agreement with the paper) from the SFT - RL intervals at every matched level."""
    states = [direction(d) for d in diffs]
    above, below = states.count("above"), states.count("below")
    more, less, _ = VERDICTS[name]
    n = len(states)
    if above and not below:
        words = f"{more} (interval above zero at {above} of {n} levels)"
        state = "above"
    elif below and not above:
        words = f"{less} (interval below zero at {below} of {n} levels)"
        state = "below"
    elif above and below:
        words = f"mixed: above zero at {above}, below at {below} of {n} levels"
        state = "mixed"
    else:
        words = f"not distinguishable: every interval includes zero ({n} levels)"
        state = "none"
    expected = PAPER.get(name)
    if expected is None:
        agreement = ""
    elif state == expected:
        agreement = "supports the paper"
    elif state in ("above", "below", "mixed"):
        agreement = "does not support the paper" if state != "mixed" else "mixed evidence"
    else:
        agreement = "no evidence either way"
    return words, agreement


def sweep_blocks(sweep: dict, methods: list[str], figures: dict[str, str]) -> list[Block]:
    if not sweep:
        return []
    blocks: list[Block] = [Heading(2, "At matched target accuracy (learning-rate sweep)")]
    blocks += verdict_blocks(sweep, methods)
    blocks += _runs_table(sweep)
    blocks += _matched_table(sweep, methods)
    captions = {
        "frontier": ("Frontier: target accuracy against prior-capability measures",
                     "Every checkpoint of every (learning rate, seed) run is a dot; the line is each method's Pareto "
                     "frontier (the best measure reached at each target accuracy). Look at which method's frontier "
                     "lies lower (forgetting) or higher (log-prob drift, damage) at the same accuracy."),
        "matched": ("Measures at matched target accuracy",
                    "At each common accuracy level, each seed's best learning rate per method, interpolated between "
                    "checkpoints; mean over seeds with 95% intervals. Look at whether the bands separate."),
    }
    for key, (title, caption) in captions.items():
        if key in figures:
            blocks.append(Figure(figures[key], title, caption))
    return blocks


def verdict_blocks(sweep: dict, methods: list[str]) -> list[Block]:
    """The matched-accuracy verdict per measure (a paragraph and a table), or why there is none."""
    matched = sweep.get("matched", {})
    levels = matched.get("levels", [])
    if len(methods) != 2 or not levels:
        top = ", ".join(f"{r['method'].upper()} lr {format_number(r['learning_rate'], 'real')}: "
                        f"{format_stat(r['max_target_accuracy'])}" for r in sweep.get("runs", []))
        return [Paragraph("No matched comparison: the methods did not both raise target accuracy above the base "
                          f"({format_number(matched.get('base_accuracy'))}); peak accuracy per run: {top or 'n/a'}.")]
    a, b = (m.upper() for m in methods)
    rows = []
    for name in VERDICTS:
        diffs = matched.get("measures", {}).get(name, {}).get("difference", [])
        if not diffs:
            continue
        words, agreement = verdict(name, diffs)
        rows.append((name, words, agreement or "—"))
    text = (f"{a} and {b} compared at {len(levels)} common target-accuracy levels "
            f"({', '.join(format_number(x) for x in levels)}; base {format_number(matched.get('base_accuracy'))}): "
            f"at each level and seed, each method's best learning rate, interpolated between checkpoints; "
            f"{a} − {b} paired by seed with 95% intervals.")
    return [Paragraph(text), Table(("measure", f"{a} − {b} at matched accuracy", "the paper's claim"),
                                   tuple(rows), "A verdict names a direction only where intervals exclude zero.")]


def _runs_table(sweep: dict) -> list[Block]:
    rows = []
    for r in sweep.get("runs", []):
        collapsed = f"{r['collapsed_seeds']}/{r['n_seeds']}"
        if r.get("rollout_collapsed_seeds") is not None:
            collapsed += f"; rollouts {r['rollout_collapsed_seeds']}/{r['n_seeds']}"
        degraded = (f"{format_stat(r.get('final_degraded_heads'), 'count')} / "
                    f"{format_stat(r.get('final_degraded_logprob'), 'count')}")
        rows.append((r["method"].upper(), format_number(r["learning_rate"], "real"),
                     format_stat(r["final_target_accuracy"]), format_stat(r["max_target_accuracy"]),
                     format_stat(r.get("final_forgetting")), format_stat(r.get("final_logprob_drift"), "real"),
                     format_stat(r.get("final_kl_exact"), "real"), degraded,
                     format_stat(r.get("final_answer_entropy"), "real"), collapsed))
    note = ("Final checkpoint of each run, mean over seeds [95% interval; accuracies on the logit scale, so they stay "
            "in range]. Collapsed: seeds whose greedy answers at the end are one answer or under 0.5 bits of entropy "
            "(never averaged away: a collapsed run is a failed run). Degraded heads: base-circuit heads summed over "
            "probes with CMAP dF < −τ (P) or < −τ·|base mean log P| (log P). 'rollouts': RL seeds whose sampled "
            "answers collapsed during training (the rollout monitor: under 0.5 bits for two windows, or one answer "
            "in 95 %).")
    return [Table(("method", "lr", "final target acc.", "peak target acc.", "forgetting", "log-prob drift",
                   "exact KL", "degraded heads (P / log P)", "answer entropy (bits)", "collapsed"), tuple(rows), note)]


def _matched_table(sweep: dict, methods: list[str]) -> list[Block]:
    matched = sweep.get("matched", {})
    levels = matched.get("levels", [])
    if not levels:
        return []
    rows = []
    for name in ("forgetting", "logprob_drift", "damage_logprob", "preservation", "kl_exact"):
        entry = matched.get("measures", {}).get(name, {})
        kind = VERDICTS[name][2]
        for i, level in enumerate(levels):
            cells = [format_stat(entry.get("by_method", {}).get(m, [{}] * len(levels))[i], kind) for m in methods]
            diff = entry.get("difference", [])
            cells.append(format_stat(diff[i], kind) if i < len(diff) else "n/a")
            rows.append((name, format_number(level), *cells))
    header = ("measure", "target accuracy", *(m.upper() for m in methods), "difference")
    return [Table(header, tuple(rows), "Mean over seeds [95% interval]; a seed whose runs never reach a level is "
                                       "missing there.")]


def has_numbers(stat: dict | None) -> bool:
    return bool(stat) and is_number(stat.get("mean"))

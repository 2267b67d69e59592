"""The report's sweep section: the methods compared at matched target accuracy, with the verdict in words.

Built from results.json's "sweep" (compare/sweep.py). The pre-specified
primary comparison (compare/primary.py) comes first, with its own verdict; every
other difference is secondary, Holm-corrected, and read by the resolution rule
(compare/resolution.py): at how many reported matched levels the SFT − RL
difference (and, with the third arm, SFT-preserve − SFT) is resolved above or
below zero. Levels with fewer than ``min_runs`` runs per method are shown,
marked, and left out of every verdict.
"""

from __future__ import annotations

from circuitdrift.compare.stats import is_number
from circuitdrift.report.findings import describe_diff, direction, why_undetected
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
# the remedy, circuit-preserving SFT minus SFT: (words for > 0, words for < 0)
REMEDY_VERDICTS = {
    "forgetting": ("preserving forgets more", "preserving forgets less"),
    "logprob_drift": ("preserving keeps more confidence in probe answers",
                      "preserving loses more confidence in probe answers"),
    "damage_logprob": ("preserving damages the base circuits less", "preserving damages the base circuits more"),
    "damage": ("preserving damages the base circuits less", "preserving damages the base circuits more"),
    "preservation": ("preserving keeps more of the base circuits", "preserving keeps less of the base circuits"),
    "kl_exact": ("preserving moves further from the base (exact answer KL)", "preserving stays closer to the base"),
    "kl": ("preserving moves further from the base (sampled KL)", "preserving stays closer to the base"),
}
PAPER_REMEDY = {"forgetting": "below", "logprob_drift": "above", "damage_logprob": "above", "damage": "above",
                "preservation": "above"}  # what the paper's remedy should do, SFT-preserve - SFT
PAIR_WORDS = {"sft - rl": (VERDICTS, PAPER), "sft-preserve - sft": (REMEDY_VERDICTS, PAPER_REMEDY)}


def verdict(name: str, diffs: list[dict], pair: str = "sft - rl") -> tuple[str, str]:
    """(words, agreement with the paper) from one pair's differences (SFT − RL by default) at the reported levels."""
    words_of, paper = PAIR_WORDS.get(pair, (VERDICTS, PAPER))
    states = [direction(d) for d in diffs if d.get("reported", True)]
    above, below = states.count("above"), states.count("below")
    more, less = words_of[name][:2]
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
        words = (f"no difference detected at any of {n} reported levels" if n else
                 "no level with enough runs per method to report")
        state = "none"
    expected = paper.get(name)
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
    if grids_text(sweep):
        blocks.append(Paragraph(grids_text(sweep)))
    blocks += verdict_blocks(sweep, methods)
    if sweep.get("law"):
        blocks.append(Paragraph(law_text(sweep["law"])))
    if sweep.get("recipe"):
        blocks.append(Paragraph(recipe_text(sweep["recipe"])))
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
        "law": ("What forgetting follows: the learning rate or the KL",
                "One point per (method, learning rate): forgetting and log-prob drift at the final checkpoint, "
                "mean over seeds with 95% intervals (seeds and questions), against the learning rate (left) and "
                "against the exact answer KL from the base (right). RL's Razor predicts the right-hand panels "
                "order the points whatever the method; forgetting that tracks the left-hand panels instead "
                "follows the step size."),
    }
    for key, (title, caption) in captions.items():
        if key in figures:
            blocks.append(Figure(figures[key], title, caption))
    return blocks


def verdict_blocks(sweep: dict, methods: list[str]) -> list[Block]:
    """The matched-accuracy verdict per measure (a paragraph and a table), or why there is none."""
    matched = sweep.get("matched", {})
    levels = matched.get("levels", [])
    pairs = _pairs(matched)
    if not pairs or not levels:
        top = ", ".join(f"{r['method'].upper()} lr {format_number(r['learning_rate'], 'real')}: "
                        f"{format_stat(r['max_target_accuracy'])}" for r in sweep.get("runs", []))
        return [Paragraph("No matched comparison: the methods did not all raise target accuracy above the base "
                          f"({format_number(matched.get('base_accuracy'))}); peak accuracy per run: {top or 'n/a'}.")]
    blocks: list[Block] = [Paragraph(_design(matched, sweep)), Paragraph(primary_text(matched.get("primary", {})))]
    for pair in pairs:
        a, b = (m.upper() for m in pair.split(" - "))
        rows = []
        for name in VERDICTS:
            diffs = _diffs(matched.get("measures", {}).get(name, {}), pair)
            if not diffs:
                continue
            words, agreement = verdict(name, diffs, pair)
            rows.append((name, words, agreement or "—"))
        text = (f"{a} and {b} compared at {len(levels)} common target-accuracy levels "
                f"({', '.join(format_number(x) for x in levels)}; base {format_number(matched.get('base_accuracy'))}): "
                f"at each level and seed, the learning rate that reached the level first on the "
                f"{matched.get('selection_split', 'test')} split, its test-split measures interpolated between "
                f"checkpoints; {a} − {b} paired by seed, 95% intervals combining seeds and questions. Secondary "
                "comparisons: a direction only where the interval excludes zero, the difference exceeds one question "
                "and Holm's corrected p < 0.05.")
        if pair == "sft-preserve - sft":
            text += " " + _remedy_cost(matched, levels)
        claim = "the paper's claim" if pair == "sft - rl" else "the remedy's aim"
        blocks += [Paragraph(text), Table(("measure", f"{a} − {b} at matched accuracy", claim), tuple(rows),
                                          "Secondary comparisons, Holm-corrected; a verdict names a direction only "
                                          "where the resolution rule allows it.")]
    return blocks


def _design(matched: dict, sweep: dict) -> str:
    """Where the selection was made, how many runs a level needs, the learning-rate grids, the Holm family."""
    split = matched.get("selection_split", "test")
    where = ("validation split; every number reported is on the test split" if split == "validation" else
             f"{split} split, the same split the numbers are reported on (records without a validation accuracy)")
    levels, reported = matched.get("levels", []), _reported(matched)
    thin = [format_number(x) for x, ok in zip(levels, reported, strict=False) if not ok]
    holm = matched.get("holm", {})
    axis = ("mean probability of the correct answer" if matched.get("axis") == "probability" else
            "greedy target accuracy")
    text = (f"Design: matched axis: {axis}; learning rates and matched levels chosen on the {where}. A level is "
            "reported only with at "
            f"least {matched.get('min_runs', 3)} runs per method"
            + (f"; levels {', '.join(thin)} have fewer and are shown but not read" if thin else "")
            + f". Secondary differences: Holm over {holm.get('family', 0)} tests at α = {holm.get('alpha', 0.05):g}.")
    return text


def grids_text(sweep: dict) -> str:
    """A warning when the methods swept different learning rates (allowed only explicitly); else empty."""
    grids = sweep.get("grids")
    if not grids or grids.get("equal", True):
        return ""
    rates = "; ".join(f"{m.upper()} {', '.join(format_number(lr, 'real') for lr in lrs)}"
                      for m, lrs in grids.get("learning_rates", {}).items())
    return (f"The methods' learning-rate grids differ ({rates}; the config set sweep.allow_unequal_grids): the "
            "grids, not only the methods, may decide this comparison.")


def primary_text(primary: dict) -> str:
    """The pre-specified primary comparison and its verdict in words."""
    if not primary:
        return "Primary comparison: not computed (a results.json from before it existed)."
    head = f"Primary comparison (named before the data): {primary.get('description', primary.get('measure'))}. "
    if not primary.get("available"):
        return head + f"Not available: {primary.get('reason', 'too few runs')}."
    stat = primary["stat"]
    levels = ", ".join(format_number(x) for x in primary.get("levels", []))
    state = direction(stat)
    words = {"above": "SFT forgets more than RL at matched accuracy",
             "below": "SFT forgets less than RL at matched accuracy (not evidence that RL forgets: see its own "
                      "forgetting below)"}.get(state, f"no difference detected ({why_undetected(stat)})"
                                               if state == "no difference detected" else state)
    p = stat.get("p")
    return (head + f"Over levels {levels}: {describe_diff(stat)}, p = {format_number(p, 'real')} "
            f"(uncorrected: the one primary test). Verdict: {words}.")


def law_text(law: dict) -> str:
    """The forgetting law over runs (compare/law.py) in words: slope with its interval, r, number of runs."""
    names = {"kl_exact": "exact KL", "kl": "sampled KL", "forgetting": "forgetting", "logprob_drift": "log-prob drift"}
    parts = []
    for entry in law.values():
        fit = entry["fit"]
        label = f"{names.get(entry['y'], entry['y'])} against {names.get(entry['x'], entry['x'])}"
        if fit.get("slope") is None:
            parts.append(f"{label}: {fit.get('n', 0)} runs, too few (or KL constant) to fit")
            continue
        interval = (f" [{format_number(fit['slope_lo'], 'real')}, {format_number(fit['slope_hi'], 'real')}]"
                    if is_number(fit.get("slope_lo")) else " (no interval: 2 runs)")
        parts.append(f"{label}: slope {format_number(fit['slope'], 'real')}{interval} per nat, r = "
                     f"{format_number(fit.get('pearson_r'))}, {fit['n']} runs")
    return ("The forgetting law over runs (one point per run, its final checkpoint; checkpoints of one run are not "
            "independent, so they are not pooled; 95% t interval on the slope): " + "; ".join(parts) + ".")


def recipe_text(recipe: dict) -> str:
    """Each method's compute per step, and RL's groups without a gradient, in words."""
    compute = recipe.get("compute_per_step", {})
    parts = []
    for method, c in compute.items():
        if c.get("completions_sampled"):
            parts.append(f"{method.upper()} samples {c['completions_sampled']} completions for {c['prompts']} prompts "
                         f"(at most {c['generated_tokens_at_most']} generated tokens) and trains on them")
        else:
            parts.append(f"{method.upper()} trains on {c['sequences_trained_on']} teacher-forced (prompt, label) "
                         "sequences")
    text = "Compute per optimizer step: " + ("; ".join(parts) or "n/a") + "."
    rates = recipe.get("rl", {}).get("by_learning_rate", {})
    if rates:
        cells = "; ".join(f"lr {key.rsplit('/', 1)[-1]}: {format_stat(v['zero_variance_share'])} of groups with zero "
                          f"reward variance (no gradient), {format_stat(v['effective_prompts_per_step'], 'real')} "
                          "effective prompts per step" for key, v in rates.items())
        text += (f" RL's gradient (rollout monitor windows, mean over windows, then over seeds): {cells}. A group "
                 "whose completions all got the same reward teaches nothing, so RL's effective batch is smaller than "
                 "its prompt count.")
    return text


def _reported(matched: dict) -> list[bool]:
    for entry in matched.get("measures", {}).values():
        if "reported" in entry:
            return entry["reported"]
    return [True] * len(matched.get("levels", []))


def _pairs(matched: dict) -> list[str]:
    """The method pairs compared ("a - b"), in the order compare/frontier.py wrote them."""
    for entry in matched.get("measures", {}).values():
        if entry.get("differences"):
            return list(entry["differences"])
        if entry.get("difference"):  # results.json written before the third arm: SFT - RL only
            return ["sft - rl"]
    return []


def _diffs(entry: dict, pair: str) -> list[dict]:
    if "differences" in entry:
        return entry["differences"].get(pair, [])
    return entry.get("difference", []) if pair == "sft - rl" else []


def _remedy_cost(matched: dict, levels: list[float]) -> str:
    """What preserving costs in target accuracy: the matched levels each arm reached, seeds per level."""
    reached = next((e.get("reached", {}) for e in matched.get("measures", {}).values() if e.get("reached")), {})
    kept, plain = reached.get("sft-preserve", []), reached.get("sft", [])
    if not kept or not plain:
        return ""
    pairs = "; ".join(f"{format_number(x)}: {k} vs {p}" for x, k, p in zip(levels, kept, plain, strict=True))
    return (f"Cost in target accuracy: seeds reaching each level, SFT-PRESERVE vs SFT: {pairs} (fewer seeds "
            "reaching a level = the penalty held target accuracy back there).")


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
    note = ("Final checkpoint of each run, mean over seeds [95% interval; accuracies and forgetting combine seeds and "
            "questions and are cut at their bounds]. Collapsed: seeds whose greedy answers at the end are one answer "
            "or under 0.5 bits of entropy (never averaged away: a collapsed run is a failed run). Degraded heads: "
            "base-circuit heads summed over probes with CMAP dF < −τ (P) or < −τ·|base mean log P| (log P). "
            "'rollouts': RL seeds whose sampled answers collapsed during training (the rollout monitor: under 0.5 bits "
            "for two windows, or one answer in 95 %).")
    return [Table(("method", "lr", "final target acc.", "peak target acc.", "forgetting", "log-prob drift",
                   "exact KL", "degraded heads (P / log P)", "answer entropy (bits)", "collapsed"), tuple(rows), note)]


def _matched_table(sweep: dict, methods: list[str]) -> list[Block]:
    matched = sweep.get("matched", {})
    levels = matched.get("levels", [])
    if not levels:
        return []
    pairs = _pairs(matched)
    rows = []
    reported = _reported(matched)
    for name in ("forgetting", "logprob_drift", "damage_logprob", "preservation", "kl_exact"):
        entry = matched.get("measures", {}).get(name, {})
        kind = VERDICTS[name][2]
        for i, level in enumerate(levels):
            label = format_number(level) if i >= len(reported) or reported[i] else \
                f"{format_number(level)} (too few runs: not reported)"
            cells = [format_stat(entry.get("by_method", {}).get(m, [{}] * len(levels))[i], kind) for m in methods]
            for pair in pairs:
                diff = _diffs(entry, pair)
                cells.append(format_stat(diff[i], kind) if i < len(diff) else "n/a")
            rows.append((name, label, *cells))
    header = ("measure", "target accuracy", *(m.upper() for m in methods), *(p.upper().replace(" - ", " − ")
                                                                             for p in pairs))
    return [Table(header, tuple(rows), "Mean over seeds [95% interval combining seeds and questions, cut at the "
                                       "measure's bounds]; a seed whose runs never reach a level is missing there.")]


def has_numbers(stat: dict | None) -> bool:
    return bool(stat) and is_number(stat.get("mean"))

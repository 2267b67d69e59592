"""The "what the data says" text, written from the numbers in results.json, whichever way they point.

Each sentence states the estimate, its 95 % interval and how it was formed,
then a verdict that only claims what the resolution rule allows
(compare/resolution.py): a direction when the interval excludes zero, the
difference exceeds one question of the evaluation and, for a secondary
comparison, survives Holm's correction; otherwise "no difference detected".
A negative forgetting is a gain ("SFT gained"), never read as the other
method forgetting more.
"""

from __future__ import annotations

from circuitdrift.compare.resolution import ALPHA, TOLERANCE, resolved
from circuitdrift.compare.schema import Aggregate, Razor, SummaryRow
from circuitdrift.compare.stats import is_number
from circuitdrift.report.tables import format_number, format_stat

CLAIM = ("The paper's claim: SFT adapts to the target task faster than RL, but forgets more of the "
         "prior capabilities and preserves less of the base circuits.")


def direction(diff: dict | None) -> str:
    """'above', 'below', 'no difference detected', 'no interval' or 'n/a' (compare/resolution.py's rule)."""
    return resolved(diff)


def why_undetected(diff: dict | None) -> str:
    """Which part of the rule held a difference back: the one-question resolution, Holm, or the interval."""
    if not diff or not is_number(diff.get("mean")):
        return ""
    res = diff.get("resolution")
    if is_number(res) and abs(diff["mean"]) <= res * (1 + TOLERANCE) + TOLERANCE:
        return f"|difference| ≤ {format_number(res)}, one question of the evaluation"
    if is_number(diff.get("p_holm")) and diff["p_holm"] >= ALPHA and is_number(diff.get("lo")) and (
            diff["lo"] > 0 or diff["hi"] < 0):
        return f"the interval excludes zero but Holm's corrected p = {format_number(diff['p_holm'], 'real')}"
    return "the 95% interval includes zero"


def own_forgetting(stat: dict | None) -> str:
    """One method's forgetting in words: 'forgot', 'gained' (a negative forgetting) or 'no forgetting detected'."""
    state = resolved({**stat, "n_a": stat.get("n", 0), "n_b": stat.get("n", 0)}) if stat else "n/a"
    if state == "n/a":
        return "not measured"
    if state == "no interval" and stat.get("n", 0) < 2:
        return "one seed: not resolved"
    return {"above": "forgot", "below": "gained (probe accuracy rose)"}.get(state, "no forgetting detected")


def describe_diff(diff: dict | None, kind: str = "frac", a: str = "SFT", b: str = "RL") -> str:
    """'SFT − RL = 0.120 [0.050, 0.190] (paired by seed, n = 3)'; ``a``, ``b`` name the two methods."""
    if not diff or not is_number(diff.get("mean")):
        return f"{a} − {b} = n/a"
    how = ("paired by seed, n = {n_a}" if diff.get("test") == "paired" else "Welch, n = {n_a} " + a + " and {n_b} "
           + b)
    return f"{a} − {b} = {format_stat(diff, kind)} ({how.format(**diff)})"


def _verdict(diff: dict | None, more: str, less: str) -> str:
    """more: what a positive SFT − RL means; less: what a negative one means."""
    state = direction(diff)
    if state == "above":
        return f"{more}: the 95% interval excludes zero and the difference exceeds the resolution."
    if state == "below":
        return f"{less}: the 95% interval excludes zero and the difference exceeds the resolution."
    if state == "no difference detected":
        return f"No difference detected ({why_undetected(diff)})."
    if state == "no interval":
        if diff and min(diff.get("n_a", 0), diff.get("n_b", 0)) >= 2:
            return ("No interval: the seeds agree exactly and no per-question variance was recorded, so the noise "
                    "is unknown and no direction is claimed.")
        return "With fewer than two seeds per method there is no interval: a single observation, not evidence."
    return "There are not enough numbers to compare."


def _claim_check(state: str, expected: str) -> str:
    if state == expected:
        return "supported"
    if state in ("above", "below"):
        return "contradicted"
    return "no difference detected" if state in ("no difference detected", "no interval") else "not measurable"


def findings(aggregate: Aggregate, summary: list[SummaryRow]) -> list[str]:
    """Paragraphs, in order: adaptation, forgetting, preservation, vulnerable heads, RL's Razor, the claim."""
    rows = {row.method: row for row in summary}
    diff = aggregate.sft_minus_rl
    goal = aggregate.settings.target_goal
    out = []
    if not diff.get("available") or "sft" not in rows or "rl" not in rows:
        out.append(f"Methods run: {', '.join(m.upper() for m in rows) or 'none'}; SFT and RL were not both run, so "
                   "there is no SFT-versus-RL comparison.")
    else:
        out += [_adaptation(rows, diff, goal), _forgetting(rows, diff, aggregate.probes),
                _preservation(rows, diff)]
        relative = relative_damage_text(aggregate)
        if relative:
            out.append(relative)
        vulnerable = _vulnerable(rows, aggregate)
        if vulnerable:
            out.append(vulnerable)
    remedy = _remedy(rows, aggregate.preserve_minus_sft)
    if remedy:
        out.append(remedy)
    out.append(_razor(aggregate.razor))
    if diff.get("available"):
        checks = {"adapts faster (fewer steps to goal)": _claim_check(direction(diff.get("steps_to_goal")), "below"),
                  "forgets more": _forgetting_claim(rows, diff.get("forgetting_mean")),
                  "preserves less of the base circuits": _claim_check(direction(diff.get("preservation_mean")),
                                                                      "below")}
        out.append(CLAIM + " Here, SFT " + "; ".join(f"{k}: {v}" for k, v in checks.items()) + ".")
    return out


def _adaptation(rows: dict[str, SummaryRow], diff: dict, goal) -> str:
    parts = []
    for method in ("sft", "rl"):
        row = rows[method]
        never = row.never_reached
        tail = f", {never} of {row.n_seeds} seeds never reached it" if never else ""
        parts.append(f"{method.upper()} {format_stat(row.steps_to_goal, 'count')}{tail}")
    text = (f"Adaptation: steps to reach target accuracy ≥ {format_number(goal)}: {'; '.join(parts)}. "
            f"{describe_diff(diff.get('steps_to_goal'), 'count')}, over seeds where both reached it. "
            + _verdict(diff.get("steps_to_goal"), "SFT needed more steps than RL", "SFT reached the goal in fewer "
                       "steps than RL"))
    acc = diff.get("target_accuracy")
    return (text + f" Final target accuracy: SFT {format_stat(rows['sft'].final_target_accuracy)}, RL "
            f"{format_stat(rows['rl'].final_target_accuracy)}; {describe_diff(acc)}. "
            + _verdict(acc, "SFT ended more accurate than RL", "RL ended more accurate than SFT"))


def _forgetting_claim(rows: dict[str, SummaryRow], diff: dict | None) -> str:
    """'SFT forgets more': contradicted only where RL itself forgot and SFT forgot less; a gain is not the opposite."""
    state = direction(diff)
    if state == "below" and own_forgetting(rows["rl"].forgetting_mean) != "forgot":
        return f"not supported (SFT {own_forgetting(rows['sft'].forgetting_mean)}, RL " \
               f"{own_forgetting(rows['rl'].forgetting_mean)}; not the opposite claim)"
    return _claim_check(state, "above")


def _forgetting(rows: dict[str, SummaryRow], diff: dict, probes: list[str]) -> str:
    sft, rl = own_forgetting(rows["sft"].forgetting_mean), own_forgetting(rows["rl"].forgetting_mean)
    less = "RL forgot more than SFT" if rl == "forgot" else f"SFT's forgetting is lower than RL's (SFT {sft}, RL {rl})"
    text = (f"Forgetting at the final checkpoint (base minus checkpoint accuracy, mean over probes; a negative value "
            f"is a gain): SFT {format_stat(rows['sft'].forgetting_mean)} ({sft}), RL "
            f"{format_stat(rows['rl'].forgetting_mean)} ({rl}); {describe_diff(diff.get('forgetting_mean'))}. "
            + _verdict(diff.get("forgetting_mean"), "SFT forgot more than RL", less))
    per_probe = diff.get("forgetting", {})
    clear = {p: direction(per_probe.get(p)) for p in probes}
    more = [p for p, s in clear.items() if s == "above"]
    less = [p for p, s in clear.items() if s == "below"]
    if more or less:
        text += (" Per probe, where the rule resolves a direction (interval, one question, Holm): SFT's forgetting "
                 f"is higher on {', '.join(more) or 'none'}, lower on {', '.join(less) or 'none'}.")
    return text


def _preservation(rows: dict[str, SummaryRow], diff: dict) -> str:
    return (f"Base-circuit preservation at the final checkpoint (fraction of the base top-k heads still in the "
            f"re-discovered circuit, mean over probes): SFT {format_stat(rows['sft'].preservation)}, RL "
            f"{format_stat(rows['rl'].preservation)}; {describe_diff(diff.get('preservation_mean'))}. "
            + _verdict(diff.get("preservation_mean"), "SFT preserved more of the base circuits than RL",
                       "SFT preserved less of the base circuits than RL"))


def relative_damage_text(aggregate: Aggregate) -> str:
    """The distribution of dF(h) / |s_h| over base-circuit heads at the end, per method, against -τ."""
    tau = aggregate.settings.tau
    parts = []
    for method in aggregate.methods:
        end = aggregate.endpoints.get(method, {})
        dists = end.get("relative_damage", {})
        cells = [f"{probe} median {format_number(d['median'], 'real')} (10–90 %: {format_number(d['q10'], 'real')} "
                 f"to {format_number(d['q90'], 'real')}; min {format_number(d['min'], 'real')})"
                 for probe, d in dists.items() if d.get("n")]
        if cells:
            count = format_stat(end.get("degraded_relative_heads"), "count")
            parts.append(f"{method.upper()}: {'; '.join(cells)}; heads past −τ·|s_h|: {count}")
    if not parts:
        return ""
    return (f"Relative damage at the final checkpoint: each base-circuit head's CMAP change over its own base "
            f"effect, dF(h)/|s_h| (−1 = as much as ablating it in the base), pooled over seeds and heads; a head is "
            f"degraded past −τ = {format_number(-tau, 'real')}, a threshold that does not depend on the metric's "
            "scale. " + " ".join(parts) + ".")


def _vulnerable(rows: dict[str, SummaryRow], aggregate: Aggregate) -> str:
    parts = []
    for probe in aggregate.probes:
        sft = rows["sft"].vulnerable_heads.get(probe)
        rl = rows["rl"].vulnerable_heads.get(probe)
        if (sft and is_number(sft.get("mean"))) or (rl and is_number(rl.get("mean"))):
            parts.append(f"{probe}: {format_stat(sft, 'count')} heads SFT damaged more, "
                         f"{format_stat(rl, 'count')} heads RL damaged more")
    if not parts:
        return ""
    return ("Head-level damage at the DCV step (mean over seeds of the number of heads whose dF under one method is "
            "lower than under the other by more than the DCV files' τ): " + "; ".join(parts) + ".")


def _remedy(rows: dict[str, SummaryRow], diff: dict) -> str:
    """Circuit-preserving SFT against plain SFT at the final checkpoint (primary learning rates, matched steps)."""
    if not diff.get("available") or "sft-preserve" not in rows or "sft" not in rows:
        return ""
    a, b = "SFT-PRESERVE", "SFT"
    kept, plain = rows["sft-preserve"], rows["sft"]
    parts = [
        f"The remedy, circuit-preserving SFT, against plain SFT at the final checkpoint (each at its primary "
        f"learning rate; the matched-accuracy comparison is in the sweep section). Forgetting: {a} "
        f"{format_stat(kept.forgetting_mean)}, {b} {format_stat(plain.forgetting_mean)}; "
        f"{describe_diff(diff.get('forgetting_mean'), 'frac', a, b)}. "
        + _verdict(diff.get("forgetting_mean"), "Preserving forgot more than SFT", "Preserving forgot less than SFT"),
        f"Base-circuit damage (mean dF over the base circuit): {a} {format_stat(kept.damage, 'real')}, {b} "
        f"{format_stat(plain.damage, 'real')}; {describe_diff(diff.get('damage_mean'), 'real', a, b)}. "
        + _verdict(diff.get("damage_mean"), "Preserving damaged the base circuits less",
                   "Preserving damaged the base circuits more"),
        f"Cost in target accuracy: {a} {format_stat(kept.final_target_accuracy)}, {b} "
        f"{format_stat(plain.final_target_accuracy)}; {describe_diff(diff.get('target_accuracy'), 'frac', a, b)}. "
        + _verdict(diff.get("target_accuracy"), "Preserving ended more accurate than SFT",
                   "Preserving cost target accuracy"),
    ]
    return " ".join(parts)


def _razor(razor: Razor) -> str:
    fit = razor.fit
    if fit.slope is None:
        return (f"RL's Razor: {fit.n} checkpoints with both KL and forgetting; too few (or KL constant) "
                "to fit a line.")
    r2 = fit.r2
    share = f"KL explains {100 * r2:.0f}% of the variance in mean forgetting" if is_number(r2) else \
        "forgetting does not vary, so there is nothing for KL to explain"
    trend = "rises" if fit.slope > 0 else "falls" if fit.slope < 0 else "does not change"
    by_method = "; ".join(f"{m.upper()} r = {format_number(v.r)} (n = {v.n})" for m, v in razor.by_method.items())
    return (f"RL's Razor: across {fit.n} checkpoints of every method (step > 0), forgetting {trend} with KL: "
            f"forgetting = {format_number(fit.slope, 'real')} · KL + {format_number(fit.intercept, 'real')}, "
            f"R² = {format_number(r2)}; {share}. Pearson r within each method: {by_method or 'n/a'}. "
            "Checkpoints of one seed are not independent, so read R² as descriptive, not as a test; the law fitted "
            "on runs (one point each) is in the sweep section.")

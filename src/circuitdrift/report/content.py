"""What the report says, as blocks, built from results.json alone (rendered by render.py).

Order: what was run, what the data says, the summary table, SFT − RL
differences, the training curves and RL's Razor, the base circuits, and the
differential circuit vulnerability per probe. Every caption says what to look at.
"""

from __future__ import annotations

from circuitdrift.compare.aggregate import base_probe_entries, distribution
from circuitdrift.compare.schema import Aggregate, ProbeDCV, Results
from circuitdrift.compare.stats import is_number
from circuitdrift.report.findings import describe_diff, direction, findings
from circuitdrift.report.render import Block, Bullets, Figure, Heading, Paragraph, Table
from circuitdrift.report.sweep import sweep_blocks
from circuitdrift.report.tables import format_number, summary_tables

INTERVAL_NOTE = ("Cells: mean over seeds [95% interval; seeds and questions combined for accuracies and forgetting]; "
                 "'(n=1)' marks a single seed; "
                 "n/a = not measured or not finite. Forgetting = base accuracy − checkpoint accuracy (> 0 = lost). "
                 "Damage = mean dF over the base circuit's heads (change in P(answer); < 0 = degraded). "
                 "Vulnerable heads: for SFT, DCV's heads under its threshold rule (below); for RL the mirror image.")


def report_blocks(results: Results, figures: dict[str, str]) -> list[Block]:
    """figures: key -> path relative to the run folder ('target_accuracy', 'base:<probe>', 'dcv:<probe>', ...)."""
    agg, summary = results.aggregate, results.summary
    blocks: list[Block] = [Heading(1, f"circuitdrift report: {results.name}")]
    blocks += _what_was_run(results)
    blocks += sweep_blocks(results.sweep, results.methods, figures)
    primary = ", ".join(f"{m.upper()} lr {format_number(lr, 'real')}"
                        for m, lr in results.primary_learning_rate.items())
    blocks += [Heading(2, "What the data says at matched steps"),
               Paragraph("Each method at its primary learning rate (best final target accuracy on the "
                         f"{results.selection_split} split, mean over seeds)"
                         + (f": {primary}." if primary else ".")),
               *[Paragraph(text) for text in findings(agg, summary)]]
    (h1, r1), (h2, r2) = summary_tables(summary)  # two tables: the page needs no horizontal scrolling
    blocks += [Heading(2, "Summary at the final checkpoint"),
               Table(tuple(h1), tuple(map(tuple, r1))), Table(tuple(h2), tuple(map(tuple, r2)), INTERVAL_NOTE)]
    blocks += _differences(agg)
    blocks += _curves(agg, figures)
    blocks += _base_circuits(results, figures)
    blocks += _dcv(results, figures)
    blocks += _controls(results, figures)
    return blocks


def _what_was_run(results: Results) -> list[Block]:
    settings = results.aggregate.settings
    n_seeds = len(results.seeds)
    preserve = results.preserve
    third = ((f"Third arm, circuit-preserving SFT: λ = {format_number(preserve.get('lambda'), 'real')}, "
              f"{len(preserve.get('heads', []))} heads kept ({', '.join(preserve.get('heads', []))}); "
              f"{preserve.get('selection', preserve.get('source', ''))}",) if preserve.get("heads") else ())
    return [Heading(2, "What was run"), Bullets((
        f"Base model: {results.base_model}",
        f"Target task: {results.target_task}; goal for 'steps to goal': target accuracy ≥ "
        f"{format_number(settings.target_goal)}",
        f"Methods: {', '.join(m.upper() for m in results.methods)}; seeds: {', '.join(map(str, results.seeds))} "
        f"({n_seeds} per method)",
        f"Checkpoints (optimizer steps): {', '.join(map(str, results.steps))}; step 0 is the base model",
        f"Prior-capability probes: {', '.join(results.probes)}",
        f"Base model accuracy: target {format_number(results.base.get('target_accuracy'))}; "
        + ", ".join(f"{p} {format_number(_base_probe(results.base, p))}" for p in results.probes),
        f"Degradation threshold τ = {format_number(settings.tau, 'real')} (a head is degraded where dF < −τ)",
        f"Measurements: {len(results.measurements)} checkpoint files; 95% intervals over seeds, with each seed's "
        "sampling variance over its questions added for accuracies, forgetting and log-prob drift (never zero width "
        "on a finite evaluation), cut at each quantity's bounds; SFT − RL differences (and SFT-PRESERVE − SFT with "
        "the third arm) are paired by seed when both methods share their seeds, else Welch",
        f"Selection: learning rates and matched levels chosen on the {results.selection_split} split; every number "
        "reported is on the test split" if results.selection_split != "test" else
        "Selection: on the test split (no separate validation split: a task file without splits, or records "
        "from before the selection split)",
        "Resolution rule: a difference no larger than one question of its evaluation, or whose interval includes "
        "zero, or (secondary comparisons) whose Holm-corrected p ≥ 0.05, reads 'no difference detected'; a "
        "negative forgetting is a gain",
        _kl_line(results),
        _circuit_split_line(results),
        *third,
    ))]


def _circuit_split_line(results: Results) -> str:
    """Where the base circuits were found, and whether those examples are disjoint from the measured ones."""
    circuits = results.base_circuits.values()
    split = {c.split for c in circuits}
    if not circuits or split == {None}:
        return "Base circuits: found on the measurement examples themselves (a record from before the circuit split)"
    shared = [c.probe for c in circuits if c.disjoint is False]
    return (f"Base circuits: found on the {', '.join(sorted(s for s in split if s))} split; "
            + ("disjoint from the examples their damage, CMAP and accuracy are measured on" if not shared else
               f"sharing examples with the measured ones for {', '.join(shared)} (a task without separate splits)"))


def _kl_line(results: Results) -> str:
    """Which KL the tables' "KL" is, and the sampled estimator's settings."""
    first = next((m for m in results.measurements if m.step > 0), None)
    samples = f"{first.kl_samples} completions per checkpoint" if first else "no trained checkpoint"
    if results.aggregate.settings.kl == "exact":
        return ("KL: the exact KL of the answer-position distribution, KL(π₀‖π), in nats (the primary KL); the "
                f"sampled sequence KL is an estimate ({samples}, sampled and scored at one temperature) beside it "
                "in the sweep section")
    return f"KL: the sampled sequence KL, an estimate ({samples}, sampled and scored at one temperature; nats/sequence)"


def _base_probe(base: dict, probe: str):
    value = base_probe_entries(base).get(probe)
    return value.get("accuracy") if isinstance(value, dict) else value


def _differences(agg: Aggregate) -> list[Block]:
    blocks = _difference_table(agg, agg.sft_minus_rl, "SFT", "RL")
    return blocks + _difference_table(agg, agg.preserve_minus_sft, "SFT-PRESERVE", "SFT")


def _difference_table(agg: Aggregate, diff: dict, a: str, b: str) -> list[Block]:
    if not diff.get("available"):
        return []
    labels = [("steps_to_goal", "steps to goal (optimizer steps)", "count"),
              ("target_accuracy", "final target accuracy", "frac"),
              ("kl", "KL (nats; which KL: see What was run)", "real"),
              ("forgetting_mean", "forgetting, mean over probes", "frac"),
              ("preservation_mean", "preservation, mean over probes", "frac"),
              ("damage_mean", "damage dF, mean over probes", "frac")]
    rows = [(label, describe_diff(diff.get(key), kind, a, b), direction(diff.get(key))) for key, label, kind in labels]
    for probe in agg.probes:
        for name in ("forgetting", "preservation"):
            d = diff.get(name, {}).get(probe)
            rows.append((f"{name}: {probe}", describe_diff(d, "frac", a, b), direction(d)))
    never = diff.get("steps_to_goal", {}).get("never_reached", {})
    holm = diff.get("holm", {})
    note = ("'above'/'below': the 95% interval lies entirely above/below zero, the difference exceeds one question "
            f"of its evaluation, and its Holm-corrected p (over the {holm.get('family', 0)} differences of this "
            "table, all secondary) is below 0.05; otherwise 'no difference detected'. Steps to goal is compared over "
            f"seeds that reached the goal (never reached: {a} {never.get(diff['a'], 'n/a')}, {b} "
            f"{never.get(diff['b'], 'n/a')}).")
    return [Heading(2, f"{a} − {b} differences at the final checkpoint"),
            Table(("quantity", f"{a} − {b} [95% CI]", "interval vs 0"), tuple(rows), note)]


def _curves(agg: Aggregate, figures: dict[str, str]) -> list[Block]:
    goal = format_number(agg.settings.target_goal)
    blocks: list[Block] = [Heading(2, "Training curves")]
    captions = {
        "target_accuracy": ("Target-task accuracy over training",
                            f"Mean over seeds with a shaded 95% interval; dashed line = the goal ({goal}). Look at "
                            "which method crosses the goal first (adaptation speed) and where each ends."),
        "forgetting": ("Forgetting per probe",
                       "Base accuracy minus checkpoint accuracy for each prior-capability probe; above zero = "
                       "capability lost. Look at whether one method's band sits above the other's, and on which "
                       "probes."),
        "preservation": ("Base-circuit preservation",
                         "Fraction of the base model's top-k heads that are still in the circuit re-discovered in "
                         "each checkpoint (1 = intact). Look at which method's circuits drift away faster."),
        "kl_forgetting": ("RL's Razor: forgetting against KL",
                          "Each dot is one checkpoint (method, seed, step > 0): forward KL from the base on the "
                          "target task against forgetting averaged over probes; black line = least-squares fit over "
                          "every method. Look at whether the methods fall on one line (KL predicts forgetting "
                          "regardless of method) and where each method's points sit along it."),
    }
    for key, (title, caption) in captions.items():
        if key in figures:
            blocks.append(Figure(figures[key], title, caption))
    fit = agg.razor.fit
    if fit.slope is not None:
        blocks.append(Paragraph(f"Fit: forgetting = {format_number(fit.slope, 'real')} · KL + "
                                f"{format_number(fit.intercept, 'real')}, R² = {format_number(fit.r2)}, "
                                f"n = {fit.n} checkpoints; pooled Pearson r = "
                                f"{format_number(agg.razor.pearson_r)}."))
    return blocks


def _base_circuits(results: Results, figures: dict[str, str]) -> list[Block]:
    if not results.base_circuits:
        return []
    rows = []
    for probe, c in results.base_circuits.items():
        rand = [v for v in c.random_faithfulness_all if is_number(v)]
        spread = f" (range {format_number(min(rand))}–{format_number(max(rand))}, {len(rand)} circuits)" if rand else ""
        rows.append((probe, f"{c.method}, {c.metric}, {c.ablation}", str(c.n_examples), format_number(c.accuracy),
                     str(len(c.circuit)), format_number(c.faithfulness),
                     f"{format_number(c.random_faithfulness)}{spread}", c.faithfulness_ablation,
                     ", ".join(c.circuit[:8]) + (" …" if len(c.circuit) > 8 else "")))
    blocks: list[Block] = [
        Heading(2, "Base circuits"),
        Table(("probe", "scoring (method, metric, ablation)", "examples", "base accuracy", "k", "faithfulness",
               "random circuits of size k", "ablation outside C", "top heads"), tuple(rows),
              "Faithfulness = F(C|M)/F(M): accuracy with every head outside the circuit ablated, relative to the "
              "intact model. A circuit is meaningful when it is well above random circuits of the same size.")]
    for probe in results.base_circuits:
        if f"base:{probe}" in figures:
            blocks.append(Figure(figures[f"base:{probe}"], f"Base head importance, probe '{probe}'",
                                 "Importance s_h of every head (layers × heads): the relative change in P(answer) "
                                 "when the head's output is patched from the counterfactual prompt; red = important "
                                 "(patching it hurts). Outlined: the top-k circuit. Look at how concentrated the "
                                 "circuit is and in which layers."))
    return blocks


def _controls(results: Results, figures: dict[str, str]) -> list[Block]:
    """Every circuit claim beside random head sets of the same size, and circuit distance along training."""
    controls = results.controls
    if not controls.get("random") and not controls.get("distance"):
        return []
    n = controls.get("settings", {}).get("n_random", "n/a")
    rows = []
    for method, per_probe in controls.get("random", {}).items():
        for probe, entry in per_probe.items():
            for name, kind in (("damage", "real"), ("preservation", "frac")):
                c = entry.get(name, {})
                interval = (f"{format_number(c.get('random_mean'), kind)} [{format_number(c.get('random_lo'), kind)}, "
                            f"{format_number(c.get('random_hi'), kind)}]")
                claim = {True: "differs from random", False: "not distinguishable from random"}.get(
                    c.get("differs"), "n/a")
                rows.append((method.upper(), probe, name, str(entry.get("size", "n/a")),
                             format_number(c.get("circuit"), kind), interval, claim))
    blocks: list[Block] = [
        Heading(2, "Controls: the base circuits against random head sets"),
        Table(("method", "probe", "measure", "k", "base circuit", f"{n} random sets of size k: mean [95%]",
               "claim"), tuple(rows),
              "Final checkpoint, primary learning rate, mean over seeds. Damage: mean CMAP dF over the heads; "
              "preservation: share of the heads still in the re-discovered circuit (for the base circuit, its "
              "re-discovered form). A circuit claim is made only where the base circuit lies outside the random "
              "sets' 2.5-97.5 percentile range.")]
    if "distance" in figures:
        blocks.append(Figure(figures["distance"], "Circuit distance over training",
                             "1 − Jaccard of each checkpoint's re-discovered circuit with the base model's (found the "
                             "same way), per probe; mean over seeds with 95% intervals. 0 = the same heads. Look at "
                             "which method's circuits move away from the base, and when."))
    return blocks


def _reverse_cmap(d) -> str:
    """Both CMAP directions over the base circuit, per method (Prakash et al. 2024)."""
    from circuitdrift.circuits.scores import parse_head

    heads = [parse_head(n) for n in d.base_circuit]
    forward = {"sft": d.delta_sft, "rl": d.delta_rl, "sft-preserve": d.delta_preserve}

    def mean(table) -> float | None:
        return None if table is None else sum(table[layer][head] for layer, head in heads) / len(heads)

    parts = [f"{m.upper()} {format_number(mean(forward.get(m)), 'real')} / {format_number(mean(back), 'real')}"
             for m, back in d.delta_reverse.items()]
    return ("CMAP in both directions over the base circuit (mean over its heads and seeds), fine-tuned head into "
            "the base / base head into the fine-tuned model: " + "; ".join(parts) + ". Forward < 0: the fine-tuned "
            "version of the heads harms the base's computation; reverse > 0: the base's version would raise the "
            "fine-tuned model's answer probability (the function the heads lost).")


def _preserved_damage(d) -> str:
    """Mean CMAP dF over the heads sft-preserve kept, per method: did the penalty keep their function?"""
    from circuitdrift.circuits.scores import parse_head

    heads = [parse_head(n) for n in d.preserved_heads]
    means = {name: sum(delta[layer][head] for layer, head in heads) / len(heads)
             for name, delta in (("SFT", d.delta_sft), ("RL", d.delta_rl), ("SFT-PRESERVE", d.delta_preserve))}
    return (f"The {len(heads)} heads circuit-preserving SFT kept ({', '.join(d.preserved_heads[:10])}"
            f"{' …' if len(heads) > 10 else ''}): mean CMAP dF over them (mean over seeds; < 0 = degraded) "
            + ", ".join(f"{m} {format_number(v, 'real')}" for m, v in means.items()) + ".")


def _dcv(results: Results, figures: dict[str, str]) -> list[Block]:
    if not results.dcv:
        return []
    blocks: list[Block] = [Heading(2, "Differential circuit vulnerability")]
    for probe, d in results.dcv.items():
        in_base = [v for v in d.vulnerable if v.get("in_base_circuit")]
        top = ", ".join(f"{v['name']} (V = {format_number(v['V'], 'real')}"
                        + (f", V/|s_h| = {format_number(v['V_relative'], 'real')}" if "V_relative" in v else "")
                        + f"{', base circuit' if v.get('in_base_circuit') else ''})" for v in d.vulnerable[:10])
        d_values = [x for row in d.D for x in row if is_number(x)]
        kept_rl = sum(x > 0 for x in d_values)
        kept_sft = sum(x < 0 for x in d_values)
        pres = ", ".join(f"{m.upper()} {format_number(v)}" for m, v in d.preservation.items())
        blocks.append(Heading(3, f"Probe '{probe}' (step {d.step}, τ = {format_number(d.tau, 'real')})"))
        blocks.append(Paragraph(
            f"{len(d.vulnerable)} vulnerable heads ({_dcv_rule(d)}, on CMAP averaged over seeds), "
            f"{len(in_base)} of them in the base circuit of {len(d.base_circuit)} heads"
            + (f": {top}{' …' if len(d.vulnerable) > 10 else ''}." if d.vulnerable else ".")
            + f" Circuit membership D(h): {kept_rl} heads where RL's circuit is closer to the base than SFT's "
            f"(D > 0), {kept_sft} where SFT's is closer (D < 0). Preservation (mean over seeds): {pres or 'n/a'}."))
        if d.V_relative is not None:
            blocks.append(Paragraph(_relative_distribution(d)))
        if d.delta_reverse:
            blocks.append(Paragraph(_reverse_cmap(d)))
        if d.preserved_heads and d.delta_preserve is not None:
            blocks.append(Paragraph(_preserved_damage(d)))
        if f"dcv:{probe}" in figures:
            blocks.append(Figure(figures[f"dcv:{probe}"], f"V(h) heatmap, probe '{probe}'",
                                 "V(h) = dF_RL(h) − dF_SFT(h) per head at the final checkpoint (change in P(answer)); "
                                 "orange = SFT damaged the head more, purple = RL did. Crosses: vulnerable heads "
                                 f"({_dcv_rule(d)}); outlined: the base circuit. Look at whether the crosses fall "
                                 "inside the outlined circuit."))
    return blocks


def _dcv_rule(d: ProbeDCV) -> str:
    if d.threshold == "relative":
        return "V(h) / |s_h| > τ on the base circuit's heads, V(h) = dF_RL − dF_SFT and s_h the head's base effect"
    return "V(h) = dF_RL − dF_SFT > τ"


def _relative_distribution(d: ProbeDCV) -> str:
    """The distribution of V / |s_h| over the base circuit's heads, so a reader sees how far from τ they lie."""
    q = distribution(x for row in d.V_relative or [] for x in row)
    if not q["n"]:
        return "V(h) / |s_h|: no base-circuit head has a nonzero base effect."
    return (f"V(h) / |s_h| over the {q['n']} base-circuit heads (> 0: SFT lost more of the head's own base effect "
            f"than RL): min {format_number(q['min'], 'real')}, 10 % {format_number(q['q10'], 'real')}, median "
            f"{format_number(q['median'], 'real')}, 90 % {format_number(q['q90'], 'real')}, max "
            f"{format_number(q['max'], 'real')}; τ = {format_number(d.tau, 'real')}.")


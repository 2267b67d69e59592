"""From the measurement files to the numbers the report states: means and 95 % intervals over seeds.

Pure functions of the typed records (no models, no files), so the whole
analysis can be rerun from results.json. Conventions (docs/report.md):

- forgetting(probe, checkpoint) = base accuracy - checkpoint accuracy, where the
  base accuracy is the step-0 measurement of the same (method, seed) run, i.e.
  the base model (base["probe_accuracy"] only for a run without step 0);
  positive = capability lost.
- every statistic is over seeds (compare/stats.py): {mean, lo, hi, n, missing}; accuracies and
  forgetting add each seed's sampling variance over its questions (compare/combined.py), so three
  identical seeds still have an interval; steps to goal adds the checkpoint grid's variance (the goal was
  reached somewhere after the previous checkpoint: gap² / 12) and is cut to the checkpoint range.
- differences carry "resolution" (one question of the measure; for steps to goal the smallest
  checkpoint spacing) and "p_holm" (Holm over this view's differences: all are secondary, the
  primary comparison is the sweep's, compare/primary.py).
- a per-seed mean over probes is missing when any probe is missing.
- steps to goal = first checkpoint step with target_accuracy >= target_goal;
  seeds that never reach it are counted, not averaged in.
- SFT - RL and SFT-preserve - SFT differences are paired by seed when both methods
  have the same seeds, else Welch.
- KL is the exact answer-position KL wherever every checkpoint has it (settings.kl = "exact"),
  else the sampled estimate ("sampled").
- RL's Razor: one least-squares line of mean forgetting over probes against KL
  through every (method, seed, step > 0) checkpoint.
- LM-Eval benchmarks (eval.lm_eval): forgetting = base score - final score per
  seed, the base being the step-0 measurement; kept apart from the probes' mean.

The aggregate (results.json "aggregate", typed as compare.schema.Aggregate)::

    settings      {target_goal, tau, level}
    methods, probes
    base_accuracy {method: {seed: {probe: accuracy | None}}}
    curves        {method: {steps, target_accuracy, kl, forgetting_mean, preservation_mean,
                            damage_mean: [stat per step], probes: {probe: {accuracy, forgetting,
                            preservation, damage: [stat per step]}}}}
    endpoints     {method: {final_steps, n_seeds, target_accuracy, kl, forgetting, preservation,
                            damage (each {probe: stat}), forgetting_mean, preservation_mean,
                            damage_mean, steps_to_goal, never_reached, degraded_heads,
                            degraded_relative_heads (dF < -tau·|s_h|), relative_damage: {probe: quantiles
                            of dF/|s_h| over seeds x base-circuit heads},
                            degraded_heads_by_probe, vulnerable_heads: {probe: stat},
                            benchmark_forgetting: {lm-eval task: stat} (only with eval.lm_eval)}}
    sft_minus_rl  {a, b, available, target_accuracy, kl, steps_to_goal, forgetting_mean,
                   preservation_mean, damage_mean, forgetting, preservation: {probe: diff}}
    preserve_minus_sft  the same for circuit-preserving SFT minus SFT (a = sft-preserve, b = sft)
    razor         {fit: {slope, intercept, r2, n}, pearson_r, by_method: {method: {r, n}},
                   points: [{method, seed, step, kl, forgetting}]}
"""

from __future__ import annotations

from collections import defaultdict

import torch

from circuitdrift.circuits.scores import parse_head
from circuitdrift.circuits.vulnerability import relative_vulnerability
from circuitdrift.compare.combined import binomial_var, combined_difference, combined_stat
from circuitdrift.compare.intervals import bounded_stat, positive_stat
from circuitdrift.compare.resolution import ALPHA, apply_holm, question_resolution
from circuitdrift.compare.schema import Aggregate, BaseCircuit, CheckpointMeasurement, ProbeDCV, SummaryRow
from circuitdrift.compare.stats import LEVEL, is_number, line_fit, mean_or_none, pearson, stat

PER_PROBE = ("accuracy", "forgetting", "preservation", "damage")
# quantities with bounds get logit-scale intervals that stay inside them (compare/intervals.py)
BOUNDS = {"target_accuracy": (0.0, 1.0), "accuracy": (0.0, 1.0), "preservation": (0.0, 1.0),
          "preservation_mean": (0.0, 1.0), "forgetting": (-1.0, 1.0), "forgetting_mean": (-1.0, 1.0)}


POSITIVE = ("kl",)  # divergences: log-scale intervals that stay above zero


def stat_of(name: str, values, variances=None) -> dict:
    """The interval statistic for a named quantity: seeds and questions combined when the quantity has example
    variances (cut at its bounds), else logit-scale if bounded, log-scale if a divergence, else t."""
    if variances is not None:
        values, variances = list(values), list(variances)
        low, high = BOUNDS.get(name, (None, None))
        return combined_stat(values, variances, low=low, high=high)
    if name in BOUNDS:
        low, high = BOUNDS[name]
        return bounded_stat(values, low=low, high=high)
    return positive_stat(values) if name in POSITIVE else stat(values)
OVER_PROBES = ("forgetting", "preservation", "damage")
VARIANCE_KEYS = ("target_accuracy_var", "forgetting_mean_var")  # quantities with a known example variance
PROBE_VARIANCES = ("accuracy", "forgetting")
PREFERRED_ORDER = ("sft", "rl", "sft-preserve")

Runs = dict[tuple[str, int], dict[int, CheckpointMeasurement]]  # (method, seed) -> step -> measurement


def aggregate(
    base: dict,
    base_circuits: dict[str, BaseCircuit],
    measurements: list[CheckpointMeasurement],
    dcv: dict[str, ProbeDCV],
    target_goal: float,
    tau: float,
) -> tuple[Aggregate, list[SummaryRow]]:
    """The aggregate (layout in the module docstring) and one summary row per method, typed as results.json's."""
    runs = index_runs(measurements)
    methods = method_order({method for method, _ in runs})
    probes = probe_order(base_circuits, measurements)
    base_acc = base_probe_accuracy(measurements, base)
    values = {key: {step: checkpoint_values(m, base_acc, probes) for step, m in steps.items()}
              for key, steps in runs.items()}
    seeds = {method: sorted(seed for m, seed in runs if m == method) for method in methods}
    finals = {key: _final_values(key, steps, values[key], base_circuits, probes, goal=target_goal, tau=tau)
              for key, steps in runs.items()}
    vulnerable = _vulnerable_per_seed(runs, dcv, probes, base_circuits)
    for key, counts in vulnerable.items():
        finals[key]["vulnerable_heads"] = counts
    schedule = sorted({step for steps in runs.values() for step in steps})
    endpoints = {method: _endpoint(method, seeds[method], finals, probes, schedule) for method in methods}
    forgotten = benchmark_forgetting(runs)
    for method in methods:
        tasks = sorted({task for seed in seeds[method] for task in forgotten.get((method, seed), {})})
        if tasks:
            endpoints[method]["benchmark_forgetting"] = {
                task: stat_of("forgetting", (forgotten.get((method, s), {}).get(task) for s in seeds[method]))
                for task in tasks}
    _fill_unpaired_vulnerable(endpoints, dcv, probes, seeds, base_circuits)
    result = {
        "settings": {"target_goal": target_goal, "tau": tau, "level": LEVEL, "kl": kl_kind(measurements)},
        "methods": methods,
        "probes": probes,
        "base_accuracy": {method: {str(seed): {p: base_acc.get((method, seed, p)) for p in probes}
                                   for seed in seeds[method]} for method in methods},
        "curves": {method: _curves(method, seeds[method], values, probes) for method in methods},
        "endpoints": endpoints,
        "sft_minus_rl": _differences(seeds, finals, probes, schedule=schedule),
        "preserve_minus_sft": _differences(seeds, finals, probes, "sft-preserve", "sft", schedule=schedule),
        "razor": razor(values),
    }
    return (Aggregate.model_validate(result),
            [SummaryRow.model_validate(summary_row(method, endpoints[method], probes)) for method in methods])


def index_runs(measurements: list[CheckpointMeasurement]) -> Runs:
    runs: Runs = defaultdict(dict)
    for m in measurements:
        runs[(m.method, m.seed)][m.step] = m
    return dict(runs)


def method_order(methods: set[str]) -> list[str]:
    """SFT first, then RL, then anything else alphabetically: the same order in every table and legend."""
    return [m for m in PREFERRED_ORDER if m in methods] + sorted(methods - set(PREFERRED_ORDER))


def probe_order(base_circuits: dict[str, BaseCircuit], measurements: list[CheckpointMeasurement]) -> list[str]:
    seen = list(base_circuits)
    for m in measurements:
        seen += [p for p in m.probes if p not in seen]
    return seen


def base_probe_accuracy(measurements: list[CheckpointMeasurement], base: dict) -> dict[tuple[str, int, str], float]:
    """(method, seed, probe) -> the base model's accuracy: that run's step-0 measurement, else the base dict's
    ``probe_accuracy`` (or ``probes``) entry."""
    fallback = {}
    for probe, value in base_probe_entries(base).items():
        value = value.get("accuracy") if isinstance(value, dict) else value
        if is_number(value):
            fallback[probe] = float(value)
    out: dict[tuple[str, int, str], float] = {}
    for key in {(m.method, m.seed) for m in measurements}:
        step0 = next((m for m in measurements if (m.method, m.seed) == key and m.step == 0), None)
        probes = set(fallback) | set(step0.probes if step0 else ())
        for probe in probes:
            value = step0.probes[probe].accuracy if step0 and probe in step0.probes else fallback.get(probe)
            if is_number(value):
                out[(*key, probe)] = float(value)
    return out


def base_probe_entries(base: dict) -> dict:
    """The base dict's per-probe accuracies, ``{probe: accuracy}`` under "probe_accuracy" or "probes"."""
    entries = base.get("probe_accuracy") or base.get("probes") or {}
    return entries if isinstance(entries, dict) else {}


def checkpoint_values(m: CheckpointMeasurement, base_acc: dict, probes: list[str]) -> dict:
    """The per-seed numbers of one checkpoint; None where a value is missing or not finite."""
    per_probe = {}
    for probe in probes:
        pm = m.probes.get(probe)
        accuracy = pm.accuracy if pm and is_number(pm.accuracy) else None
        base = base_acc.get((m.method, m.seed, probe))
        n = pm.n if pm else None
        per_probe[probe] = {
            "accuracy": accuracy,
            "forgetting": base - accuracy if accuracy is not None and base is not None else None,
            "preservation": pm.preservation if pm and is_number(pm.preservation) else None,
            "damage": pm.damage if pm and is_number(pm.damage) else None,
            "n": n,
            "accuracy_var": binomial_var(accuracy, n),
            "forgetting_var": _forgetting_var(pm, accuracy, base, n, m.step),
        }
    out = {
        "target_accuracy": m.target_accuracy if is_number(m.target_accuracy) else None,
        "target_accuracy_var": binomial_var(m.target_accuracy, m.target_n),
        "target_n": m.target_n,
        "kl": primary_kl(m),  # the exact answer-position KL where measured, else the sampled estimate
        "probes": per_probe,
    }
    for name in OVER_PROBES:
        out[f"{name}_mean"] = mean_or_none(per_probe[p][name] for p in probes)
    parts = [per_probe[p]["forgetting_var"] for p in probes]
    out["forgetting_mean_var"] = None if not parts or None in parts else sum(parts) / len(parts) ** 2
    out["forgetting_mean_resolution"] = question_resolution([per_probe[p]["n"] for p in probes])
    return out


def primary_kl(m: CheckpointMeasurement) -> float | None:
    """The exact KL where it was measured (the primary KL), else the sampled estimate."""
    if is_number(m.kl_exact):
        return m.kl_exact
    return m.kl if is_number(m.kl) else None


def kl_kind(measurements: list[CheckpointMeasurement]) -> str:
    """'exact' when every checkpoint has the exact KL, else 'sampled' (an estimate)."""
    return "exact" if measurements and all(is_number(m.kl_exact) for m in measurements) else "sampled"


def _forgetting_var(pm, accuracy, base, n, step) -> float | None:
    """A forgetting's variance over questions: the paired per-question SE squared, else both binomials added."""
    if accuracy is None or base is None:
        return None
    if step == 0:
        return 0.0
    if pm is not None and is_number(pm.forgetting_se):
        return pm.forgetting_se**2
    a, b = binomial_var(accuracy, n), binomial_var(base, n)
    return None if a is None or b is None else a + b


def benchmark_forgetting(runs: Runs) -> dict[tuple[str, int], dict[str, float]]:
    """(method, seed) -> {LM-Eval task: base score - final score}; the base is the run's step 0 (else any step 0)."""
    step0 = [steps[0] for steps in runs.values() if 0 in steps and steps[0].benchmarks]
    out = {}
    for key, steps in runs.items():
        base = steps[0] if 0 in steps and steps[0].benchmarks else (step0[0] if step0 else None)
        final = steps[max(steps)]
        if base is None or max(steps) == 0:
            continue
        out[key] = {task: base.benchmarks[task] - score for task, score in final.benchmarks.items()
                    if is_number(score) and is_number(base.benchmarks.get(task))}
    return out


def steps_to_goal_var(steps: list[int], reached: int | None) -> float | None:
    """The grid's variance of a first crossing seen at checkpoint ``reached``: the goal was reached somewhere
    after the previous checkpoint, so uniform over that gap, gap² / 12 (0 when the first checkpoint has it)."""
    if reached is None:
        return None
    earlier = [s for s in steps if s < reached]
    return (reached - earlier[-1]) ** 2 / 12 if earlier else 0.0


def steps_to_goal(values_by_step: dict[int, dict], goal: float) -> int | None:
    """First checkpoint step whose target accuracy reaches the goal; None if none does."""
    for step in sorted(values_by_step):
        accuracy = values_by_step[step]["target_accuracy"]
        if accuracy is not None and accuracy >= goal:
            return step
    return None


def degraded_heads(m: CheckpointMeasurement, circuit: BaseCircuit | None, probe: str, tau: float) -> int | None:
    """How many base-circuit heads have dF < -tau at this checkpoint (None when the CMAP is missing)."""
    pm = m.probes.get(probe)
    if pm is None or circuit is None or not pm.cmap:
        return None
    count = 0
    for name in circuit.circuit:
        layer, head = parse_head(name)
        try:
            value = pm.cmap[layer][head]
        except IndexError:
            return None
        if not is_number(value):
            return None
        count += value < -tau
    return count


def relative_damage(m: CheckpointMeasurement, circuit: BaseCircuit | None, probe: str) -> list[float] | None:
    """dF(h) / |s_h| for every base-circuit head: its damage as a fraction of its own base effect.

    s_h is the head's importance in the base circuit (BaseCircuit.scores, the metric's change when the
    head is patched), so -1 means the checkpoint lost as much through the head as ablating it in the base
    did. A threshold on this ratio (dF < -tau·|s_h|) can be reached whatever the metric's scale, which an
    absolute tau on a CMAP of ~1e-5 cannot. None when the CMAP or a score is missing, and heads with
    s_h = 0 are left out.
    """
    pm = m.probes.get(probe)
    if pm is None or circuit is None or not pm.cmap:
        return None
    out = []
    for name in circuit.circuit:
        layer, head = parse_head(name)
        try:
            value, score = pm.cmap[layer][head], circuit.scores[layer][head]
        except IndexError:
            return None
        if not is_number(value) or not is_number(score):
            return None
        if score != 0:
            out.append(value / abs(score))
    return out


def degraded_relative_heads(m: CheckpointMeasurement, circuit: BaseCircuit | None, probe: str,
                            tau: float) -> int | None:
    """Base-circuit heads whose damage exceeds tau times their own base effect: dF(h) < -tau·|s_h|."""
    ratios = relative_damage(m, circuit, probe)
    return None if ratios is None else sum(r < -tau for r in ratios)


def degraded_logprob_heads(m: CheckpointMeasurement, circuit: BaseCircuit | None, probe: str,
                           tau: float) -> int | None:
    """Base-circuit heads whose log-prob CMAP is below -tau * |base mean log P(answer)| (docs/methods.md §4).

    The probability metric's rule dF < -tau is a drop of tau times the base's answer probability when
    that is 1; scaled the same way, this rule asks for a rise of the answer's surprisal by a fraction
    tau of the base model's own surprisal. Computed here, not when measuring, so tau stays a setting of
    the comparison alone.
    """
    pm = m.probes.get(probe)
    if pm is None or circuit is None or pm.cmap_logprob is None or not is_number(pm.base_logprob):
        return None
    threshold = tau * abs(pm.base_logprob)
    return sum(pm.cmap_logprob[layer][head] < -threshold for layer, head in map(parse_head, circuit.circuit))


def _final_values(key, steps, values, base_circuits, probes, *, goal, tau) -> dict:
    final = max(steps)
    out = dict(values[final])
    out["step"] = final
    out["steps_to_goal"] = steps_to_goal(values, goal)
    out["steps_to_goal_var"] = steps_to_goal_var(sorted(values), out["steps_to_goal"])
    by_probe = {p: degraded_heads(steps[final], base_circuits.get(p), p, tau) for p in probes}
    out["degraded_heads_by_probe"] = by_probe
    out["degraded_heads"] = sum(by_probe.values()) if by_probe and None not in by_probe.values() else None
    relative = {p: degraded_relative_heads(steps[final], base_circuits.get(p), p, tau) for p in probes}
    out["degraded_relative_heads"] = sum(relative.values()) if relative and None not in relative.values() else None
    out["relative_damage"] = {p: relative_damage(steps[final], base_circuits.get(p), p) for p in probes}
    out["vulnerable_heads"] = {}
    return out


def _curves(method: str, seeds: list[int], values: dict, probes: list[str]) -> dict:
    steps = sorted({step for seed in seeds for step in values[(method, seed)]})

    def column(name, get, var=None) -> list[dict]:
        rows = [[values[(method, s)][step] for s in seeds if step in values[(method, s)]] for step in steps]
        return [stat_of(name, (get(v) for v in row), None if var is None else (var(v) for v in row)) for row in rows]

    out = {"steps": steps}
    for name in ("target_accuracy", "kl", *(f"{n}_mean" for n in OVER_PROBES)):
        var_key = f"{name}_var"
        out[name] = column(name, lambda v, name=name: v[name],
                           (lambda v, k=var_key: v[k]) if var_key in VARIANCE_KEYS else None)
    out["probes"] = {p: {name: column(name, lambda v, p=p, name=name: v["probes"][p][name],
                                      (lambda v, p=p, name=name: v["probes"][p][f"{name}_var"])
                                      if name in PROBE_VARIANCES else None) for name in PER_PROBE}
                     for p in probes}
    return out


def _endpoint(method: str, seeds: list[int], finals: dict, probes: list[str], schedule: list[int]) -> dict:
    rows = [finals[(method, seed)] for seed in seeds]
    reached = [row["steps_to_goal"] for row in rows if row["steps_to_goal"] is not None]
    grid_var = [row["steps_to_goal_var"] for row in rows if row["steps_to_goal"] is not None]
    out = {
        "final_steps": sorted({row["step"] for row in rows}),
        "n_seeds": len(seeds),
        "target_accuracy": stat_of("target_accuracy", (row["target_accuracy"] for row in rows),
                                   (row["target_accuracy_var"] for row in rows)),
        "kl": stat_of("kl", (row["kl"] for row in rows)),
        "steps_to_goal": combined_stat(reached, grid_var, low=schedule[0], high=schedule[-1]),
        "never_reached": len(rows) - len(reached),
        "degraded_heads": stat(row["degraded_heads"] for row in rows),
        "degraded_heads_by_probe": {p: stat(row["degraded_heads_by_probe"][p] for row in rows) for p in probes},
        "degraded_relative_heads": stat(row["degraded_relative_heads"] for row in rows),
        "relative_damage": {p: distribution(r for row in rows for r in (row["relative_damage"][p] or []))
                            for p in probes},
        "vulnerable_heads": {p: stat(row["vulnerable_heads"].get(p) for row in rows) for p in probes},
    }
    for name in OVER_PROBES:
        known = name in PROBE_VARIANCES
        out[name] = {p: stat_of(name, (row["probes"][p][name] for row in rows),
                                (row["probes"][p][f"{name}_var"] for row in rows) if known else None)
                     for p in probes}
        out[f"{name}_mean"] = stat_of(f"{name}_mean", (row[f"{name}_mean"] for row in rows),
                                      (row[f"{name}_mean_var"] for row in rows) if known else None)
    if rows:  # what one question in every probe moves the mean by: the resolution rule reads it
        out["forgetting_mean"]["resolution"] = rows[0]["forgetting_mean_resolution"]
    return out


def distribution(values) -> dict:
    """Quantiles (min, 10 %, median, 90 %, max) and count of a pooled list of ratios; None entries when empty."""
    kept = sorted(v for v in values if is_number(v))
    if not kept:
        return {"n": 0, "min": None, "q10": None, "median": None, "q90": None, "max": None}

    def q(frac):
        pos = frac * (len(kept) - 1)
        low = int(pos)
        return kept[low] + (pos - low) * (kept[min(low + 1, len(kept) - 1)] - kept[low])

    return {"n": len(kept), "min": kept[0], "q10": q(0.1), "median": q(0.5), "q90": q(0.9), "max": kept[-1]}


def _vulnerable_per_seed(runs: Runs, dcv: dict[str, ProbeDCV], probes: list[str],
                         base_circuits: dict[str, BaseCircuit]) -> dict:
    """Per seed with both methods, at the DCV step and with DCV's rule: heads one method damaged more than the other.

    For SFT this is DCV's vulnerable set (V > tau, or V / |s_h| > tau on the base circuit with the relative
    threshold); for RL the mirror image (-V instead of V), so the table shows both directions.
    """
    out: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    shared = {s for m, s in runs if m == "sft"}
    if not shared or shared != {s for m, s in runs if m == "rl"}:
        return {}
    for probe in probes:
        if probe not in dcv:
            continue
        step = dcv[probe].step
        for seed in sorted(shared):
            sft, rl = runs[("sft", seed)].get(step), runs[("rl", seed)].get(step)
            pair = (sft.probes.get(probe) if sft else None, rl.probes.get(probe) if rl else None)
            if None in pair or not _same_shape(pair[0].cmap, pair[1].cmap):
                continue
            counts = _one_sided_counts(pair[0].cmap, pair[1].cmap, dcv[probe], base_circuits.get(probe))
            if counts is not None:
                out[("sft", seed)][probe], out[("rl", seed)][probe] = counts
    return dict(out)


def _one_sided_counts(sft: list[list[float]], rl: list[list[float]], dcv: ProbeDCV,
                      circuit: BaseCircuit | None) -> tuple[int, int] | None:
    """(heads SFT damaged more than RL, heads RL damaged more than SFT) under DCV's threshold rule."""
    flat = [(a, b) for row_a, row_b in zip(sft, rl, strict=True) for a, b in zip(row_a, row_b, strict=True)]
    if not all(is_number(a) and is_number(b) for a, b in flat):
        return None
    tau = dcv.tau
    if dcv.threshold == "absolute":
        return sum(a < b - tau for a, b in flat), sum(b < a - tau for a, b in flat)
    if circuit is None:
        return None
    v = torch.tensor(rl, dtype=torch.float64) - torch.tensor(sft, dtype=torch.float64)
    scores, heads = torch.tensor(circuit.scores, dtype=torch.float64), [parse_head(h) for h in circuit.circuit]
    return (int((relative_vulnerability(v, scores, heads) > tau).sum()),
            int((relative_vulnerability(-v, scores, heads) > tau).sum()))


def _same_shape(a: list[list[float]], b: list[list[float]]) -> bool:
    return bool(a) and len(a) == len(b) and all(len(x) == len(y) for x, y in zip(a, b, strict=True))


def _fill_unpaired_vulnerable(endpoints: dict, dcv: dict[str, ProbeDCV], probes: list[str], seeds: dict,
                              base_circuits: dict[str, BaseCircuit]) -> None:
    """Without paired seeds there are no per-seed counts: use DCV's count from seed-mean V, marked n = 1."""
    if "sft" not in endpoints or "rl" not in endpoints or seeds["sft"] == seeds["rl"]:
        return
    for probe in probes:
        if probe not in dcv:
            continue
        d = dcv[probe]
        counts = _one_sided_counts([[0.0] * len(row) for row in d.V], d.V, d, base_circuits.get(probe))
        if counts is None:
            continue
        for method, count in zip(("sft", "rl"), counts, strict=True):
            endpoints[method]["vulnerable_heads"][probe] = {**stat([count]), "source": "dcv seed-mean V"}


def _differences(seeds: dict, finals: dict, probes: list[str], a: str = "sft", b: str = "rl", *,
                 schedule: list[int] | None = None) -> dict:
    """``a`` minus ``b`` at the final checkpoint for every quantity, paired by seed where the seeds match.

    Intervals combine seeds and questions where the example variance is known; each difference carries
    its resolution and a Holm-adjusted p-value over this family (all secondary).
    """
    if a not in seeds or b not in seeds:
        return {"a": a, "b": b, "available": False}

    def by_seed(method, get) -> dict[int, float | None]:
        return {seed: get(finals[(method, seed)]) for seed in seeds[method]}

    def diff(get, var=None, resolution=None) -> dict:
        var = var or (lambda row: None)
        out = combined_difference(by_seed(a, get), by_seed(b, get), by_seed(a, var), by_seed(b, var))
        out["resolution"] = resolution
        return out

    first = finals[(a, seeds[a][0])]
    gaps = [y - x for x, y in zip(schedule or [], (schedule or [])[1:], strict=False)]
    out = {"a": a, "b": b, "available": True}
    out["target_accuracy"] = diff(lambda row: row["target_accuracy"], lambda row: row["target_accuracy_var"],
                                  1.0 / first["target_n"] if first.get("target_n") else None)
    out["kl"] = diff(lambda row: row["kl"])
    out["steps_to_goal"] = diff(lambda row: row["steps_to_goal"], lambda row: row["steps_to_goal_var"],
                                resolution=min(gaps) if gaps else None)
    out["forgetting_mean"] = diff(lambda row: row["forgetting_mean"], lambda row: row["forgetting_mean_var"],
                                  first["forgetting_mean_resolution"])
    for name in ("preservation_mean", "damage_mean"):
        out[name] = diff(lambda row, name=name: row[name])
    out["steps_to_goal"]["never_reached"] = {
        method: sum(finals[(method, s)]["steps_to_goal"] is None for s in seeds[method]) for method in (a, b)}
    n_of = {p: first["probes"][p]["n"] for p in probes}
    out["forgetting"] = {p: diff(lambda row, p=p: row["probes"][p]["forgetting"],
                                 lambda row, p=p: row["probes"][p]["forgetting_var"],
                                 1.0 / n_of[p] if n_of[p] else None) for p in probes}
    out["preservation"] = {p: diff(lambda row, p=p: row["probes"][p]["preservation"]) for p in probes}
    family = [out[k] for k in ("target_accuracy", "kl", "steps_to_goal", "forgetting_mean", "preservation_mean",
                               "damage_mean")] + list(out["forgetting"].values()) + list(out["preservation"].values())
    out["holm"] = {"family": apply_holm(family), "alpha": ALPHA,
                   "what": "every difference of this view (all secondary; the primary is the sweep's)"}
    return out


def razor(values: dict) -> dict:
    """Forgetting (mean over probes) against KL over every checkpoint after step 0, both methods pooled."""
    points = [{"method": method, "seed": seed, "step": step, "kl": v["kl"], "forgetting": v["forgetting_mean"]}
              for (method, seed), steps in sorted(values.items()) for step, v in sorted(steps.items())
              if step > 0 and v["kl"] is not None and v["forgetting_mean"] is not None]
    xs, ys = [p["kl"] for p in points], [p["forgetting"] for p in points]
    by_method = {}
    for method in method_order({p["method"] for p in points}):
        mine = [p for p in points if p["method"] == method]
        by_method[method] = {"r": pearson([p["kl"] for p in mine], [p["forgetting"] for p in mine]), "n": len(mine)}
    return {"fit": line_fit(xs, ys), "pearson_r": pearson(xs, ys), "by_method": by_method, "points": points}


def summary_row(method: str, end: dict, probes: list[str]) -> dict:
    """The paper-shaped summary for one method; every number a stat over seeds."""
    return {
        "method": method,
        "n_seeds": end["n_seeds"],
        "final_steps": end["final_steps"],
        "steps_to_goal": end["steps_to_goal"],
        "never_reached": end["never_reached"],
        "final_target_accuracy": end["target_accuracy"],
        "forgetting": {p: end["forgetting"][p] for p in probes},
        "forgetting_mean": end["forgetting_mean"],
        "kl": end["kl"],
        "preservation": end["preservation_mean"],
        "damage": end["damage_mean"],
        "degraded_heads": end["degraded_heads"],
        "vulnerable_heads": {p: end["vulnerable_heads"][p] for p in probes},
        "benchmark_forgetting": end.get("benchmark_forgetting", {}),
    }

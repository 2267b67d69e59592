"""The learning-rate sweep: per-run results, frontiers, and the comparison at matched target accuracy.

RL's Razor's design: a method's forgetting depends on how far it is pushed, so
methods are compared at the same target accuracy, not the same step. Every
(method, learning rate, seed) run gives a trajectory of checkpoints; each
measure is interpolated along it at common accuracy levels, the best learning
rate is taken per level and seed (the method's frontier), and the methods are
compared with intervals over seeds (:mod:`circuitdrift.compare.frontier`).

The sweep dict (results.json "sweep")::

    measures      {name: {higher_is_better, description}}
    grids         {learning_rates: {method: [rates run]}, equal}  (unequal only with sweep.allow_unequal_grids)
    runs          [{method, learning_rate, n_seeds, final_target_accuracy, final_<measure>: stat,
                    collapsed_seeds (greedy answers at the end), rollout_collapsed_seeds (the RL
                    rollout monitor during training), max_target_accuracy}]
    frontier      {measure: {method: {points: [[accuracy, value], ...] (every checkpoint),
                                      pareto: [[accuracy, value], ...]}}}
    run_finals    [{method, learning_rate, seed, final_target_accuracy (test split), final_selection_accuracy,
                   collapsed}]: collapsed =
                  the run ended at or below the task's chance accuracy (``chance``) on the selection split;
                  collapsed runs are kept out of the matched levels and the matched comparison
    matched       {base_accuracy, selection_split, levels, primary (compare/primary.py),
                   holm: {family, alpha}, measures: {measure: matched_comparison(...)}}
    razor         {kl: fit, kl_exact: fit}  forgetting against KL over every checkpoint of every run (descriptive)
    law           the forgetting law over runs, one point per run (compare/law.py): the one to read

Selection (docs/methods.md): the primary learning rates, the matched levels, the crossings and the
learning rate chosen per level all come from the target accuracy on the selection split (validation;
``CheckpointMeasurement.selection_accuracy``); every value reported is measured on the test split.
Records without a selection accuracy (written before it existed) fall back to the test split, and
``selection_split`` says so.
"""

from __future__ import annotations

from collections import defaultdict

from circuitdrift.compare.aggregate import degraded_heads, degraded_logprob_heads
from circuitdrift.compare.combined import binomial_var, combined_stat
from circuitdrift.compare.frontier import (
    MIN_RUNS,
    Point,
    collapsed_runs,
    matched_comparison,
    matched_levels,
    pareto_frontier,
)
from circuitdrift.compare.intervals import bounded_stat, positive_stat
from circuitdrift.compare.law import law_on_runs
from circuitdrift.compare.primary import PRIMARY_MEASURE, primary_comparison
from circuitdrift.compare.resolution import ALPHA, apply_holm, question_resolution
from circuitdrift.compare.schema import CheckpointMeasurement
from circuitdrift.compare.stats import is_number, line_fit, mean_or_none, pearson, stat

# name -> (higher is better, description); every value is a mean over probes unless it says otherwise
MEASURES: dict[str, tuple[bool, str]] = {
    "forgetting": (False, "probe accuracy lost (base minus checkpoint)"),
    "logprob_drift": (True, "change in log P(correct probe answer), nats"),
    "kl": (False, "forward KL from the base on target prompts, a sampled estimate (nats/sequence; eval.kl_samples "
                  "completions at eval.kl_temperature, both models scored there)"),
    "kl_exact": (False, "exact KL of the answer-position distribution (nats): the primary KL"),
    "damage": (True, "mean CMAP dF over the base circuit (change in P(answer))"),
    "damage_logprob": (True, "mean CMAP dF over the base circuit (change in log P(answer), nats)"),
    "preservation": (True, "overlap of the re-discovered circuit with the base's"),
}
BOUNDED = {"preservation"}
POSITIVE = {"kl", "kl_exact"}  # divergences: log-scale intervals that stay above zero (compare/intervals.py)
COMBINED = ("forgetting", "logprob_drift")  # measures with a known example variance (checkpoint_variances)
# the range each measure can take: combined intervals at matched levels are cut there
RANGES = {"forgetting": (-1.0, 1.0), "preservation": (0.0, 1.0), "kl": (0.0, None), "kl_exact": (0.0, None)}


def _stat_for(name: str):
    """The interval statistic of a measure: logit-scale if bounded, log-scale if a divergence, else t."""
    return bounded_stat if name in BOUNDED else positive_stat if name in POSITIVE else stat

RunKey = tuple[str, float, int]  # (method, learning rate, seed)


def checkpoint_measures(m: CheckpointMeasurement, base: CheckpointMeasurement, probes: list[str]) -> dict:
    """Every measure of one checkpoint (None where missing)."""

    def over_probes(get) -> float | None:
        return mean_or_none(get(m.probes[p], base.probes[p]) if p in m.probes and p in base.probes else None
                            for p in probes)

    return {
        "forgetting": over_probes(lambda pm, pb: pb.accuracy - pm.accuracy),
        "logprob_drift": over_probes(lambda pm, pb: pm.logprob_drift),
        "kl": m.kl if is_number(m.kl) else None,
        "kl_exact": m.kl_exact if is_number(m.kl_exact) else None,
        "damage": over_probes(lambda pm, pb: pm.damage),
        "damage_logprob": over_probes(lambda pm, pb: pm.damage_logprob),
        "preservation": over_probes(lambda pm, pb: pm.preservation),
    }


def checkpoint_variances(m: CheckpointMeasurement, base: CheckpointMeasurement, probes: list[str]) -> dict:
    """Each measure's sampling variance over examples at one checkpoint (None where not known).

    A mean over P probes has variance Σ v_p / P². Forgetting's v_p is the paired per-question
    standard error squared when measured, else the two accuracies' binomial variances added (base and
    checkpoint on the same questions: an upper bound); log-prob drift's is its standard error squared.
    """

    def over_probes(get) -> float | None:
        parts = [get(m.probes[p], base.probes[p]) if p in m.probes and p in base.probes else None for p in probes]
        return None if not parts or None in parts else sum(parts) / len(parts) ** 2

    def forgetting(pm, pb) -> float | None:
        if m.step == 0 or m is base:
            return 0.0 if pm.accuracy == pb.accuracy else None
        if is_number(pm.forgetting_se):
            return pm.forgetting_se**2
        a, b = binomial_var(pm.accuracy, pm.n), binomial_var(pb.accuracy, pb.n)
        return None if a is None or b is None else a + b

    return {"forgetting": over_probes(forgetting),
            "logprob_drift": over_probes(lambda pm, pb: pm.logprob_drift_se**2
                                         if is_number(pm.logprob_drift_se) else None)}


def selection_probability(m: CheckpointMeasurement) -> float | None:
    """Mean probability of the correct answer on the selection split (the alternative matched axis)."""
    return m.selection_prob if is_number(m.selection_prob) else None


def selection_accuracy(m: CheckpointMeasurement) -> float:
    """Target accuracy on the selection split, else (an older record) on the test split."""
    return m.selection_accuracy if is_number(m.selection_accuracy) else m.target_accuracy


def selection_split(records: list[CheckpointMeasurement]) -> str:
    """The split learning rates and levels were chosen on: the records' selection split, or "test" if any lacks one."""
    splits = {r.selection_split if is_number(r.selection_accuracy) else None for r in records}
    return splits.pop() if len(splits) == 1 and None not in splits else "test"


def index(records: list[CheckpointMeasurement]) -> dict[RunKey, list[CheckpointMeasurement]]:
    """Run -> its checkpoints in step order."""
    runs: dict[RunKey, list[CheckpointMeasurement]] = defaultdict(list)
    for r in records:
        runs[(r.method, r.learning_rate, r.seed)].append(r)
    return {k: sorted(v, key=lambda r: r.step) for k, v in sorted(runs.items())}


def primary_learning_rates(records: list[CheckpointMeasurement]) -> dict[str, float]:
    """Per method, the learning rate with the highest final target accuracy averaged over seeds (ties: lower),
    on the selection split (validation) when the records have it."""
    finals: dict[tuple[str, float], list[float]] = defaultdict(list)
    use_selection = selection_split(records) != "test"
    for (method, lr, _), steps in index(records).items():
        finals[(method, lr)].append(selection_accuracy(steps[-1]) if use_selection else steps[-1].target_accuracy)
    best: dict[str, tuple[float, float]] = {}
    for (method, lr), values in sorted(finals.items()):
        mean = sum(values) / len(values)
        if method not in best or mean > best[method][0]:
            best[method] = (mean, lr)
    return {method: lr for method, (_, lr) in best.items()}


def sweep_analysis(records: list[CheckpointMeasurement], methods: list[str], probes: list[str], *,
                   n_levels: int = 5, rollouts: dict | None = None, circuits: dict | None = None,
                   tau: float = 0.1, min_runs: int = MIN_RUNS, axis: str = "accuracy",
                   chance: float | None = None) -> dict:
    """The sweep dict of the module docstring; ``rollouts``: RL runs' monitor summaries keyed "method/lr/seed";
    ``chance``: the target task's chance accuracy (runs ending at or below it on the selection split are collapsed)."""
    runs = index(records)
    base = next(r for r in records if r.step == 0)
    values = {key: [checkpoint_measures(m, base, probes) for m in steps] for key, steps in runs.items()}
    variances = {key: [checkpoint_variances(m, base, probes) for m in steps] for key, steps in runs.items()}
    split = selection_split(records)
    axis_name, axis = _matched_axis(records, axis, split)
    trajectories = {key: [(m.step, axis(m)) for m in steps] for key, steps in runs.items()}
    by_accuracy = selection_accuracy if split != "test" else (lambda m: m.target_accuracy)
    failed = collapsed_runs({key: [(m.step, by_accuracy(m)) for m in steps] for key, steps in runs.items()}, chance)
    out: dict = {"measures": {name: {"higher_is_better": hib, "description": desc}
                              for name, (hib, desc) in MEASURES.items()}}
    grids = {method: sorted({lr for m, lr, _ in runs if m == method}) for method in methods}
    out["grids"] = {"learning_rates": grids, "equal": len({tuple(g) for g in grids.values()}) <= 1}
    out["runs"] = _run_rows(runs, values, variances, methods, rollouts or {})
    for row in out["runs"]:  # base-circuit heads degraded at the end, summed over probes (both thresholds)
        keys = [k for k in runs if k[:2] == (row["method"], row["learning_rate"])]
        row["final_degraded_heads"] = stat(_degraded(runs[k][-1], circuits or {}, probes, tau, "prob") for k in keys)
        row["final_degraded_logprob"] = stat(_degraded(runs[k][-1], circuits or {}, probes, tau, "logprob")
                                             for k in keys)
    out["run_finals"] = [{"method": key[0], "learning_rate": key[1], "seed": key[2],
                          "final_target_accuracy": runs[key][-1].target_accuracy,
                          "final_selection_accuracy": by_accuracy(runs[key][-1]), "collapsed": key in failed}
                         for key in runs]
    out["chance"] = chance
    out["frontier"] = {name: {method: _frontier(runs, values, method, name) for method in methods}
                       for name in MEASURES}
    reached = _reached(trajectories, failed, methods)
    levels = matched_levels(axis(base), reached, n_levels) if len(reached) == len(methods) else []
    resolution = question_resolution([base.probes[p].n if p in base.probes else None for p in probes])
    matched = {}
    for name in MEASURES:
        points = {key: [Point(step, acc, v[name], var.get(name))
                        for (step, acc), v, var in zip(trajectories[key], values[key], variances[key], strict=True)]
                  for key in runs if key not in failed}
        matched[name] = matched_comparison(points, levels, methods, bounds=RANGES.get(name, (None, None)),
                                           min_runs=min_runs, resolution=resolution if name == "forgetting" else None)
    primary = primary_comparison(matched.get(PRIMARY_MEASURE, {}), resolution)
    family = [d for entry in matched.values() for diffs in entry.get("differences", {}).values() for d in diffs
              if d.get("reported")]
    out["matched"] = {"base_accuracy": axis(base), "base_test_accuracy": base.target_accuracy,
                      "selection_split": split, "axis": axis_name, "levels": levels, "min_runs": min_runs,
                      "primary": primary,
                      "holm": {"family": apply_holm(family), "alpha": ALPHA,
                               "what": "every difference at every reported level, all measures and pairs"},
                      "measures": matched}
    out["razor"] = {kl: _razor(runs, values, kl) for kl in ("kl", "kl_exact")}
    out["law"] = law_on_runs({key: values[key][-1] for key in runs})
    return out


def _matched_axis(records: list[CheckpointMeasurement], axis: str, split: str):
    """(name, record -> value) of the matched axis: the selection split's accuracy or answer probability."""
    if axis == "probability":
        if not all(is_number(r.selection_prob) for r in records):
            raise ValueError("sweep.matched_axis 'probability' needs every record's selection_prob (measured since "
                             "the selection split existed)")
        return "probability", selection_probability
    return "accuracy", selection_accuracy if split != "test" else (lambda m: m.target_accuracy)


def _reached(trajectories: dict, failed: set, methods: list[str]) -> list[float]:
    """The top of each method's reach: its best learning rate's mean (over seeds) peak, collapsed runs left out."""
    reached = []
    for method in methods:
        peaks: dict[float, list[float]] = defaultdict(list)
        for (m, lr, seed), traj in trajectories.items():
            if m == method and (m, lr, seed) not in failed:
                peaks[lr].append(max(acc for _, acc in traj))
        if peaks:
            reached.append(max(sum(v) / len(v) for v in peaks.values()))
    return reached


def _run_rows(runs: dict, values: dict, variances: dict, methods: list[str], rollouts: dict) -> list[dict]:
    grouped: dict[tuple[str, float], list[RunKey]] = defaultdict(list)
    for key in runs:
        grouped[key[:2]].append(key)
    rows = []
    for (method, lr), keys in sorted(grouped.items(), key=lambda kv: (methods.index(kv[0][0]), kv[0][1])):
        row = {"method": method, "learning_rate": lr, "n_seeds": len(keys),
               "final_step": runs[keys[0]][-1].step,
               "final_target_accuracy": _accuracy_stat([runs[k][-1] for k in keys]),
               "max_target_accuracy": _accuracy_stat([max(runs[k], key=lambda m: m.target_accuracy)
                                                      for k in keys]),
               "collapsed_seeds": sum(bool(runs[k][-1].collapsed) for k in keys),
               # seeds whose rollouts collapsed during training (RL only; None where no monitor summary exists)
               "rollout_collapsed_seeds": _rollout_collapses(rollouts, keys),
               "final_answer_entropy": stat(runs[k][-1].answer_entropy for k in keys)}
        for name in MEASURES:
            finals = [values[k][-1][name] for k in keys]
            if name in COMBINED:
                low, high = RANGES.get(name, (None, None))
                row[f"final_{name}"] = combined_stat(finals, [variances[k][-1][name] for k in keys], low=low,
                                                     high=high)
            else:
                row[f"final_{name}"] = _stat_for(name)(finals) if name not in BOUNDED or all(
                    v is not None for v in finals) else stat(finals)
        rows.append(row)
    return rows


def _accuracy_stat(checkpoints: list[CheckpointMeasurement]) -> dict:
    """Target accuracy over seeds, each seed's binomial variance over its test questions added."""
    return combined_stat([m.target_accuracy for m in checkpoints],
                         [binomial_var(m.target_accuracy, m.target_n) for m in checkpoints], low=0.0, high=1.0)


def _degraded(m: CheckpointMeasurement, circuits: dict, probes: list[str], tau: float, metric: str) -> int | None:
    count = degraded_heads if metric == "prob" else degraded_logprob_heads
    counts = [count(m, circuits.get(p), p, tau) for p in probes]
    return None if not counts or None in counts else sum(counts)


def _rollout_collapses(rollouts: dict, keys: list[RunKey]) -> int | None:
    found = [rollouts.get(f"{m}/{lr:g}/{seed}") for m, lr, seed in keys]
    if not any(found):
        return None
    return sum(bool(entry and entry.get("collapse")) for entry in found)


def _frontier(runs: dict, values: dict, method: str, name: str) -> dict:
    higher_is_better = MEASURES[name][0]
    points = [(m.target_accuracy, v[name]) for key, steps in runs.items() if key[0] == method
              for m, v in zip(steps, values[key], strict=True) if v[name] is not None]
    return {"points": sorted(points), "pareto": pareto_frontier(points, higher_is_better)}


def _razor(runs: dict, values: dict, kl: str) -> dict:
    """Forgetting (mean over probes) against KL, one least-squares line over every checkpoint after step 0."""
    pairs = [(v[kl], v["forgetting"]) for key, steps in runs.items() for m, v in zip(steps, values[key], strict=True)
             if m.step > 0 and v[kl] is not None and v["forgetting"] is not None]
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    return {"fit": line_fit(xs, ys), "pearson_r": pearson(xs, ys), "n": len(pairs)}

"""results.csv: one tidy row per method x learning rate x seed x checkpoint x probe, for pandas and R.

LM-Eval benchmarks (eval.lm_eval) get rows of their own, probe "lm-eval:<task>", with the score in
probe_accuracy and base minus score in forgetting; their circuit columns are empty.

Missing numbers are an empty cell (what pandas and R read as NA), never 0.
"""

from __future__ import annotations

import csv
import io

from circuitdrift.compare.aggregate import base_probe_accuracy, degraded_logprob_heads, method_order
from circuitdrift.compare.schema import CheckpointMeasurement
from circuitdrift.compare.stats import is_number

CSV_COLUMNS = ("method", "learning_rate", "seed", "step", "probe", "probe_accuracy", "forgetting",
               "logprob_drift", "preservation", "damage", "damage_logprob", "degraded_logprob", "target_accuracy",
               "kl", "kl_exact", "answer_entropy", "collapsed")


def results_csv(measurements: list[CheckpointMeasurement], base_accuracy_by_seed_probe: dict | None = None,
                circuits: dict | None = None, tau: float = 0.1) -> str:
    """One row per method x learning rate x seed x checkpoint x probe.

    ``base_accuracy_by_seed_probe`` maps (method, seed, probe) or (seed, probe)
    to the base model's probe accuracy; by default each run's step-0
    measurement (as in the aggregate), so forgetting agrees with results.json.
    """
    circuits = circuits or {}
    base = base_accuracy_by_seed_probe
    if base is None:
        base = base_probe_accuracy(measurements, {})
    order = {m: i for i, m in enumerate(method_order({m.method for m in measurements}))}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in sorted(measurements, key=lambda m: (order[m.method], m.learning_rate or 0.0, m.seed, m.step)):
        for probe in sorted(m.probes):
            pm = m.probes[probe]
            reference = base.get((m.method, m.seed, probe), base.get((m.seed, probe)))
            forgetting = reference - pm.accuracy if is_number(reference) and is_number(pm.accuracy) else None
            collapsed = "" if m.collapsed is None else str(m.collapsed).lower()
            writer.writerow([m.method, _cell(m.learning_rate), m.seed, m.step, probe, _cell(pm.accuracy),
                             _cell(forgetting), _cell(pm.logprob_drift), _cell(pm.preservation), _cell(pm.damage),
                             _cell(pm.damage_logprob),
                             _cell(degraded_logprob_heads(m, circuits.get(probe), probe, tau)),
                             _cell(m.target_accuracy),
                             _cell(m.kl), _cell(m.kl_exact), _cell(m.answer_entropy), collapsed])
        base_scores = _base_benchmarks(measurements, m)
        for task in sorted(m.benchmarks):
            reference, score = base_scores.get(task), m.benchmarks[task]
            forgetting = reference - score if is_number(reference) and is_number(score) else None
            writer.writerow([m.method, _cell(m.learning_rate), m.seed, m.step, f"lm-eval:{task}", _cell(score),
                             _cell(forgetting), "", "", "", "", "", _cell(m.target_accuracy), _cell(m.kl),
                             _cell(m.kl_exact), _cell(m.answer_entropy),
                             "" if m.collapsed is None else str(m.collapsed).lower()])
    return out.getvalue()


def _base_benchmarks(measurements: list[CheckpointMeasurement], m: CheckpointMeasurement) -> dict[str, float]:
    """The base model's LM-Eval scores for ``m``'s run: its step 0, else any step-0 record."""
    bases = [x for x in measurements if x.step == 0 and x.benchmarks]
    pool = [x for x in bases if (x.method, x.seed) == (m.method, m.seed)] or bases
    return pool[0].benchmarks if pool else {}


def _cell(value) -> str:
    return repr(float(value)) if is_number(value) else ""

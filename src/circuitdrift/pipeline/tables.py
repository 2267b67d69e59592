"""Tables for people and for pandas: the tidy results.csv and the summary table with intervals.

Missing numbers are an empty cell in the CSV (what pandas and R read as NA)
and "n/a" in the summary table, never 0.
"""

from __future__ import annotations

import csv
import io

from circuitdrift.pipeline.aggregate import base_probe_accuracy, degraded_logprob_heads, method_order
from circuitdrift.pipeline.schema import CheckpointMeasurement
from circuitdrift.pipeline.stats import is_number

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
    return out.getvalue()


def _cell(value) -> str:
    return repr(float(value)) if is_number(value) else ""


def format_number(value, kind: str = "frac") -> str:
    """frac: 3 decimals (accuracies, fractions, dF); count: integer or 1 decimal; real: 3 significant digits."""
    if not is_number(value):
        return "n/a"
    value = float(value)
    if kind == "count":
        text = str(int(round(value))) if value == round(value) else f"{value:.1f}"
    elif kind == "real":
        text = f"{value:.0f}" if abs(value) >= 1e3 else f"{value:#.3g}".rstrip(".")
    else:
        text = f"{value:.3f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def format_stat(s: dict | None, kind: str = "frac") -> str:
    """'mean [lo, hi]'; a single seed shows 'mean (n=1)', no data 'n/a'."""
    if not s or not is_number(s.get("mean")):
        return "n/a"
    mean = format_number(s["mean"], kind)
    if s.get("n", 0) < 2 or not is_number(s.get("lo")) or not is_number(s.get("hi")):
        return f"{mean} (n={s.get('n', 0)})"
    return f"{mean} [{format_number(s['lo'], kind)}, {format_number(s['hi'], kind)}]"


def summary_probes(summary: list[dict]) -> list[str]:
    probes: list[str] = []
    for row in summary:
        probes += [p for p in row.get("forgetting", {}) if p not in probes]
    return probes


def summary_table(summary: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the summary table, shared by the Markdown and HTML reports."""
    probes = summary_probes(summary)
    header = (["method", "seeds", "steps to goal", "final target accuracy"]
              + [f"forgetting: {p}" for p in probes]
              + ["forgetting (mean)", "KL (nats/seq)", "preservation", "damage dF (ΔP)", "degraded heads (dF < −τ)"]
              + [f"vulnerable heads: {p}" for p in probes])
    rows = []
    for row in summary:
        forgetting, vulnerable = row.get("forgetting", {}), row.get("vulnerable_heads", {})
        rows.append([str(row["method"]).upper(), str(row.get("n_seeds", "n/a")), _steps_cell(row),
                     format_stat(row.get("final_target_accuracy"))]
                    + [format_stat(forgetting.get(p)) for p in probes]
                    + [format_stat(row.get("forgetting_mean")), format_stat(row.get("kl"), "real"),
                       format_stat(row.get("preservation")), format_stat(row.get("damage")),
                       format_stat(row.get("degraded_heads"), "count")]
                    + [format_stat(vulnerable.get(p), "count") for p in probes])
    return header, rows


def _steps_cell(row: dict) -> str:
    never, n = row.get("never_reached", 0), row.get("n_seeds", 0)
    if never and never == n:
        return f"never reached ({never}/{n} seeds)"
    text = format_stat(row.get("steps_to_goal"), "count")
    return f"{text}; never reached by {never}/{n}" if never else text


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)]) + "\n"


def summary_tables(summary: list[dict]) -> list[tuple[list[str], list[list[str]]]]:
    """The summary table in two parts that fit a page: accuracy and forgetting, then KL and the circuits."""
    header, rows = summary_table(summary)
    split = 4 + sum(h.startswith("forgetting") for h in header)
    return [(header[:split], [r[:split] for r in rows]),
            (header[:1] + header[split:], [r[:1] + r[split:] for r in rows])]


def summary_markdown(summary: list[dict]) -> str:
    """The summary tables in Markdown, cells 'mean [lo, hi]' (95 % interval over seeds)."""
    return "\n".join(markdown_table(*part) for part in summary_tables(summary))

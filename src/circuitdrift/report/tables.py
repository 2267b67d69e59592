"""The summary table with intervals and the number formats every report section shares.

Missing numbers are "n/a", never 0.
"""

from __future__ import annotations

from circuitdrift.compare.schema import SummaryRow
from circuitdrift.compare.stats import is_number


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
    """'mean [lo, hi]'; a single seed shows 'mean (n=1)', seeds that all agree 'mean (n=k, all equal)', no data
    'n/a'."""
    if not s or not is_number(s.get("mean")):
        return "n/a"
    mean = format_number(s["mean"], kind)
    if s.get("spread") == "none" and s.get("n", 0) >= 2:
        return f"{mean} (n={s['n']}, all equal)"
    if s.get("n", 0) < 2 or not is_number(s.get("lo")) or not is_number(s.get("hi")):
        return f"{mean} (n={s.get('n', 0)})"
    return f"{mean} [{format_number(s['lo'], kind)}, {format_number(s['hi'], kind)}]"


def summary_probes(summary: list[SummaryRow]) -> list[str]:
    probes: list[str] = []
    for row in summary:
        probes += [p for p in row.forgetting if p not in probes]
    return probes


def summary_table(summary: list[SummaryRow]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the summary table, shared by the Markdown and HTML reports."""
    probes = summary_probes(summary)
    benchmarks = sorted({task for row in summary for task in row.benchmark_forgetting})
    header = (["method", "seeds", "steps to goal", "final target accuracy"]
              + [f"forgetting: {p}" for p in probes]
              + [f"forgetting: {task} (LM-Eval)" for task in benchmarks]
              + ["forgetting (mean)", "KL (nats)", "preservation", "damage dF (ΔP)", "degraded heads (dF < −τ)"]
              + [f"vulnerable heads: {p}" for p in probes])
    rows = []
    for row in summary:
        rows.append([row.method.upper(), str(row.n_seeds), _steps_cell(row),
                     format_stat(row.final_target_accuracy)]
                    + [format_stat(row.forgetting.get(p)) for p in probes]
                    + [format_stat(row.benchmark_forgetting.get(task)) for task in benchmarks]
                    + [format_stat(row.forgetting_mean), format_stat(row.kl, "real"),
                       format_stat(row.preservation), format_stat(row.damage),
                       format_stat(row.degraded_heads, "count")]
                    + [format_stat(row.vulnerable_heads.get(p), "count") for p in probes])
    return header, rows


def _steps_cell(row: SummaryRow) -> str:
    never, n = row.never_reached, row.n_seeds
    if never and never == n:
        return f"never reached ({never}/{n} seeds)"
    text = format_stat(row.steps_to_goal, "count")
    return f"{text}; never reached by {never}/{n}" if never else text


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)]) + "\n"


def summary_tables(summary: list[SummaryRow]) -> list[tuple[list[str], list[list[str]]]]:
    """The summary table in two parts that fit a page: accuracy and forgetting, then KL and the circuits."""
    header, rows = summary_table(summary)
    split = 4 + sum(h.startswith("forgetting") for h in header)
    return [(header[:split], [r[:split] for r in rows]),
            (header[:1] + header[split:], [r[:1] + r[split:] for r in rows])]


def summary_markdown(summary: list[SummaryRow]) -> str:
    """The summary tables in Markdown, cells 'mean [lo, hi]' (95 % interval over seeds)."""
    return "\n".join(markdown_table(*part) for part in summary_tables(summary))

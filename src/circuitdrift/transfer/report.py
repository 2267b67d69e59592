"""The transfer report: figures, report.md and a self-contained report.html, from results.json alone.

Same conventions as the SFT-vs-RL report (report/render.py lays out the blocks,
report/figures.py's fixed style and atomic PNG writes).
"""

from __future__ import annotations

import json
from pathlib import Path

from circuitdrift.io import write_text
from circuitdrift.report.figures import new_figure, save_png, styled
from circuitdrift.report.render import Bullets, Figure, Heading, Paragraph, Table, render_html, render_markdown
from circuitdrift.transfer.crossing import describe

TEACHER, STUDENT, TAU, RANDOM = "#c0392b", "#2471a3", "#1e8449", "#d68910"


def _errorbar(ax, xs, stats, color, label):
    pts = [(x, s) for x, s in zip(xs, stats, strict=True) if s is not None and s.get("mean") is not None]
    if not pts:
        return
    x = [p[0] for p in pts]
    mean = [p[1]["mean"] for p in pts]
    lo = [max(0.0, p[1]["mean"] - p[1]["lo"]) for p in pts]
    hi = [max(0.0, p[1]["hi"] - p[1]["mean"]) for p in pts]
    ax.errorbar(x, mean, yerr=[lo, hi], color=color, marker="o", capsize=3, label=label)


@styled
def behaviour_figure(results: dict, path: Path) -> Path:
    rows = sorted(results["rows"], key=lambda r: r["alpha"])
    xs = [r["alpha"] for r in rows]
    fig = new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    _errorbar(ax, xs, [r["B_teacher"] for r in rows], TEACHER, "teacher (steered along r)")
    _errorbar(ax, xs, [r["B_student"] for r in rows], STUDENT, f"student ({len(results['seeds'])} seeds)")
    if results.get("random_alphas"):
        _errorbar(ax, xs, [r.get("B_student_random") for r in rows], RANDOM, "student of the random-direction teacher")
    ax.plot(xs, [r["flag_rate"] for r in rows], color="#7f8c8d", linestyle=":", marker="x", label="flag rate of data")
    ax.set_xlabel("alpha (steering strength)")
    ax.set_ylabel("B = attack success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="best", fontsize=8)
    return save_png(fig, path)


@styled
def tau_figure(results: dict, path: Path) -> Path:
    rows = sorted(results["rows"], key=lambda r: r["alpha"])
    xs = [r["alpha"] for r in rows]
    fig = new_figure(6.0, 3.4)
    ax = fig.add_subplot()
    _errorbar(ax, xs, [r["tau"] for r in rows], TAU, "tau (95% interval)")
    _errorbar(ax, xs, [r.get("tau_random") for r in rows], RANDOM, "tau_random")
    undefined = [r["alpha"] for r in rows if r["tau_status"] == "teacher did not move"]
    if undefined:
        ax.scatter(undefined, [0.0] * len(undefined), marker="x", color="#7f8c8d", label="undefined (teacher still)")
    ax.axhline(0.0, color="#999", linewidth=0.8)
    for c in results["threshold"]:
        if c["status"] == "found":
            where = c["interpolated"] if c["interpolated"] is not None else c["alpha"]
            ax.axvline(where, color="#8e44ad", linestyle="--", label=f"threshold {where:.3g}")
    ax.set_xlabel("alpha (steering strength)")
    ax.set_ylabel("transfer ratio")
    ax.legend(loc="best", fontsize=8)
    return save_png(fig, path)


def _fmt(s: dict | None, digits: int = 3) -> str:
    if s is None or s.get("mean") is None:
        return "-"
    return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"


def _fmt_p(s: dict | None, digits: int = 3) -> str:
    if s is None or s.get("mean") is None:
        return "-"
    return f"{_fmt(s, digits)} (p_Holm {s['p_holm']:.3g})" if s.get("p_holm") is not None else _fmt(s, digits)


def _num(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _heads_text(heads: list[dict] | None) -> str:
    return ", ".join(f"{h['head']} {h['delta']:+.3f}" for h in (heads or [])[:3]) or "-"


def _by_alpha(results: dict) -> list[dict]:
    return sorted(results["rows"], key=lambda r: (abs(r["alpha"]), r["alpha"]))


def transfer_table(results: dict) -> Table:
    rows = _by_alpha(results)
    return Table(
        ("alpha", "B teacher", "B student", "tau", "B teacher (random dir.)", "B student (random dir.)", "tau_random",
         "tau - tau_random"),
        tuple((f"{r['alpha']:g}", _fmt(r["B_teacher"]), _fmt(r["B_student"]),
               _fmt_p(r["tau"]) if r["tau"] is not None else r["tau_status"], _fmt(r.get("B_teacher_random")),
               _fmt(r.get("B_student_random")), _fmt_p(r.get("tau_random")), _fmt_p(r.get("excess")))
              for r in rows),
        note=f"95% intervals per alpha; {len(results['seeds'])} student seeds per alpha and arm, "
             f"{rows[0]['n_prompts']} harmful prompts. " + results["method"]["intervals"] + ". "
             + results["method"]["multiplicity"] + ".",
    )


def quality_table(results: dict) -> Table:
    def cells(q: dict | None, n_train, acc: dict | None) -> tuple:
        q = q or {}
        return (str(n_train) if n_train is not None else "-", _num(q.get("accuracy")), _num(q.get("mean_words"), 1),
                _num(q.get("refusal_rate")), _num(q.get("unsafe_rate")), _fmt(acc))

    lines = []
    for r in _by_alpha(results):
        lines.append((f"{r['alpha']:g}", "r", *cells(r.get("quality"), r.get("n_train"), r.get("benign_accuracy"))))
        if r.get("random"):
            x = r["random"]
            lines.append((f"{r['alpha']:g}", "random", *cells(x.get("quality"), x.get("n_train"),
                                                               x.get("benign_accuracy"))))
    return Table(("alpha", "teacher direction", "rows trained on", "data accuracy", "data words", "data refusal rate",
                  "data unsafe rate", "student benign accuracy"), tuple(lines),
                 note=results["method"]["quality"] + f". Filter: {results.get('filter', 'none')}.")


def mechanism_table(results: dict) -> Table:
    lines = []
    for r, m, arm in ((r, r.get(key), arm) for r in _by_alpha(results)
                      for key, arm in (("mechanism", "r"), ("mechanism_random", "random"))):
        if not m:
            continue
        pc = m["paired_cosine"]
        null = pc["null"]
        layers = ", ".join(_num(s["mean"], 2) for s in m["per_layer_cosine"])
        ablation = m.get("ablation")
        did = (f"{_fmt(ablation['did'])} (B {ablation['B_ablated']:.3f} vs control {ablation['B_control_ablated']:.3f}"
               " ablated)") if ablation else "-"
        cosine = f"{_fmt(pc, 2)}; null [{null['lo']:.2f}, {null['hi']:.2f}], p {null['p']:.3g}"
        lines.append((f"{r['alpha']:g}", arm, cosine, layers, _fmt(m["shift_norm"], 2),
                      _fmt(m["paired_shift_norm"], 2), _fmt(m["effective_alpha"], 3), did,
                      _fmt(m["logp_compliant"], 2), _fmt(m["logp_refusal"], 2),
                      _heads_text(r["heads"]) if arm == "r" else "-"))
    return Table(("alpha", "teacher direction", "paired cosine (steered - control, r)", "per-layer paired cosine",
                  "shift norm", "paired shift norm", "effective alpha", "ablation diff-in-diff", "d log P(compliant)",
                  "d log P(refusal)", "top heads (CMAP)"), tuple(lines),
                 note="; ".join(results["method"][k] for k in ("paired_cosine", "effective_alpha", "ablation", "logp")))


def seeds_table(results: dict) -> Table:
    rows = _by_alpha(results)
    seeds = [str(s) for s in results["seeds"]]
    return Table(("alpha", *(f"B seed {s}" for s in seeds), "tau per seed"),
                 tuple((f"{r['alpha']:g}", *(f"{r['B_student_per_seed'][s]:.3f}" for s in seeds),
                        ", ".join(f"{v:.3f}" for v in r["tau"]["per_seed"]) if r["tau"] else "-") for r in rows))


def report_blocks(results: dict) -> list:
    steering = results["steering"]
    return [
        Heading(1, f"Subliminal transfer: {results['name']}"),
        Paragraph(f"Teacher: {results['base_model']} steered along a difference-of-means vector from layer "
                  f"{steering['layer']} (layers {steering['layers']}, {steering['scale']} scale; layer rule: "
                  f"{steering['rule']}). Students: the same base model fine-tuned ({results.get('optimizer', 'adamw')})"
                  f" on the teacher's answers to benign prompts only; judge: {results['judge']}."),
        Heading(2, "Summary"),
        Bullets((
            "verdict: " + results["verdict"],
            *("threshold: " + describe(c) for c in results["threshold"]),
            *("threshold: " + describe(c) for c in results.get("threshold_excess", [])),
            "tau: " + results["method"]["tau"] + "; " + results["method"]["undefined"],
            "tau_random: " + results["method"]["tau_random"],
            "threshold rule: " + results["method"]["threshold"],
            "B: " + results["method"]["B"],
        )),
        transfer_table(results),
        Heading(2, "Teacher data and the benign task"),
        quality_table(results),
        Heading(2, "Mechanism, against the control students"),
        mechanism_table(results),
        Heading(2, "Per seed"),
        seeds_table(results),
        Figure("figures/behaviour.png", "Behaviour against steering strength",
               "B of the steered teacher, its students and the random-direction teacher's students; the judge's "
               "flag rate on the teacher's benign data."),
        Figure("figures/tau.png", "Transfer ratio", "tau and tau_random with 95% intervals; a threshold found by "
               "the crossing rule dashed."),
    ]


def build_transfer_report(run_dir: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    behaviour_figure(results, run_dir / "figures" / "behaviour.png")
    tau_figure(results, run_dir / "figures" / "tau.png")
    blocks = report_blocks(results)
    md = write_text(run_dir / "report.md", render_markdown(blocks))
    page = write_text(run_dir / "report.html", render_html(blocks, f"circuitdrift transfer: {results['name']}",
                                                           run_dir))
    return [md, page]

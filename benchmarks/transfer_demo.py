"""The transfer demo's wall time, and how stable its answer is in the number of student seeds. Prints JSON.

Timing: runs ``circuitdrift transfer CONFIG --out OUT --quiet`` (a fresh folder) and records the wall
time, the stage times of ``OUT/timings.json`` and the load average before and after (the machine may
be shared: say so beside any figure). ``--analyse RUN`` skips the run and reads a finished folder.

Stability: from the finished folder's per-seed measures, recompute tau, tau - tau_random, the crossing
and the verdict on every subset of m seeds (m = 3 .. all), and report for each m the share of subsets
whose verdict and threshold status agree with all seeds', and the range of tau at each alpha.

    .venv/bin/python benchmarks/transfer_demo.py [--config configs/transfer-demo.yaml] [--out runs/t-bench]
    .venv/bin/python benchmarks/transfer_demo.py --analyse runs/transfer-demo
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def timed_run(config: str | None, out: Path) -> dict:
    cmd = [sys.executable, "-m", "circuitdrift", "transfer", *([config] if config else []), "--out", str(out),
           "--quiet"]
    load_before = os.getloadavg()
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    return {"command": " ".join(cmd[1:]), "wall_s": round(time.perf_counter() - started, 1),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()]}


def _summary(rows: list[dict], has_random: bool) -> dict:
    from circuitdrift.transfer.crossing import thresholds
    from circuitdrift.transfer.results import verdict

    return {"verdict": verdict(rows, has_random),
            "threshold": [c["status"] for c in thresholds(rows, "tau")],
            "tau": {r["alpha"]: r["tau"]["mean"] for r in rows if r["tau"]}}


def stability(run: Path) -> dict:
    from circuitdrift.transfer import stages
    from circuitdrift.transfer.config import load_transfer_config
    from circuitdrift.transfer.ratio import transfer_rows

    config, _ = load_transfer_config(run / "config.resolved.yaml")
    rand = config.random_alphas()
    teacher = {(arm, a): json.loads((run / stages.teacher_rel(a, arm) / "behaviour.json").read_text())["complied"]
               for arm, a in stages.teacher_items(config)}
    evals = {(arm, a, s): json.loads((run / stages.eval_rel(a, s, arm)).read_text())["complied"]
             for arm, a, s in stages.student_items(config)}

    def rows_for(seeds) -> list[dict]:
        return transfer_rows({a: teacher[("refusal", a)] for a in config.alphas},
                             {a: [evals[("refusal", a, s)] for s in seeds] for a in config.alphas},
                             random_teacher={a: teacher[("random", a)] for a in rand},
                             random_student={a: [evals[("random", a, s)] for s in seeds] for a in rand},
                             min_shift=config.analysis.min_shift)

    full = _summary(rows_for(config.seeds), bool(rand))
    out = {"all_seeds": full, "subsets": {}}
    for m in range(3, len(config.seeds) + 1):
        subsets = [_summary(rows_for(c), bool(rand)) for c in itertools.combinations(config.seeds, m)]
        taus = {a: [s["tau"].get(a) for s in subsets if s["tau"].get(a) is not None] for a in full["tau"]}
        out["subsets"][m] = {
            "n_subsets": len(subsets),
            "verdict_agrees": sum(s["verdict"] == full["verdict"] for s in subsets) / len(subsets),
            "threshold_agrees": sum(s["threshold"] == full["threshold"] for s in subsets) / len(subsets),
            "tau_range": {str(a): [round(min(v), 4), round(max(v), 4)] for a, v in taus.items() if v},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="default: configs/transfer-demo.yaml")
    parser.add_argument("--out", default="runs/transfer-bench")
    parser.add_argument("--analyse", default=None, help="a finished run folder: no run, analysis only")
    args = parser.parse_args()
    run = Path(args.analyse or args.out)
    report = {} if args.analyse else timed_run(args.config, run)
    timings = json.loads((run / "timings.json").read_text())
    report["stages_s"] = {name: round(t["total_s"], 1) for name, t in timings.items()}
    report["stability"] = stability(run)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""How long a worker pool takes to start and run trivial jobs: spawned workers against forked ones.

The pipeline starts one pool per stage (training, measurements; teachers, students and their measures in the
transfer experiment). A spawned worker imports torch, transformers, TRL and circuitdrift itself (~5 s); a
worker forked from the fork server (engine/pool.py, CPU) finds them imported. Each mode runs in a fresh
process, two pools in a row with two workers each, each job a trivial call of a function in the pipeline's
worker module, so the time is the pools' start. Prints JSON: wall seconds of each pool.

    .venv/bin/python benchmarks/pool_start.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from circuitdrift.engine.pool import JobPlan, run_all
from circuitdrift.pipeline.stages import parse_heads  # a trivial function of the pipeline's worker module


def pools(start: str) -> dict:
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        results = [r for _, r, _ in run_all(parse_heads, [["L0.H1"], ["L1.H0"]], JobPlan(2, start=start))]
        assert sorted(results) == [[(0, 1)], [(1, 0)]]
        seconds.append(round(time.perf_counter() - started, 2))
    return {"first_pool_s": seconds[0], "second_pool_s": seconds[1]}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--mode":
        print(json.dumps(pools(sys.argv[2])))
        return
    out = {"load_average_before": os.getloadavg()}
    for start in ("spawn", "forkserver"):
        done = subprocess.run([sys.executable, __file__, "--mode", start], capture_output=True, text=True, check=True)
        out[start] = json.loads(done.stdout.strip().splitlines()[-1])
    out["load_average_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

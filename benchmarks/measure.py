"""One checkpoint's measurement, with and without the base's CMAP gradients reused across checkpoints.

Measures the same checkpoints of a finished run (``make demo``'s runs/demo by default) twice in one
process with one torch thread: once recomputing the base model's attribution-CMAP gradients for every
checkpoint (the reference), once keeping them per probe (pipeline/measure.py's ReceiverCache). The first
checkpoint of each pass pays the one-off costs (the base's circuits re-found, tasks built, the cache
filled), so the per-checkpoint figure is the median over the rest. Prints one JSON object, including
whether the two passes' records are identical.

    .venv/bin/python benchmarks/measure.py --run runs/demo --checkpoints 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--checkpoints", type=int, default=6, help="checkpoints measured per pass")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from transformers.utils import logging

    logging.set_verbosity_error()
    from circuitdrift.compare.schema import BaseCircuit
    from circuitdrift.pipeline.config import load_config
    from circuitdrift.pipeline.measure import BaseReference, measure_checkpoint
    from circuitdrift.train.checkpoints import checkpoint_step, list_checkpoints

    config, _ = load_config(args.run / "config.resolved.yaml")
    circuits = {p.stem: BaseCircuit.model_validate_json(p.read_text())
                for p in sorted((args.run / "circuits" / "base").glob("*.json"))}
    folders = sorted(f for run in sorted((args.run / "train").glob("*/*/seed*")) for f in list_checkpoints(run)
                     if checkpoint_step(f))[: args.checkpoints]
    out, records = {"run": str(args.run), "checkpoints": [str(f) for f in folders]}, {}
    for reuse in (False, True):
        ref = BaseReference(config, circuits, reuse_gradients=reuse)
        seconds, dumps = [], []
        for folder in folders:
            started = time.perf_counter()
            record = measure_checkpoint(ref, "x", 0, None, checkpoint_step(folder), folder, exact=False)
            seconds.append(time.perf_counter() - started)
            dumps.append(record.model_dump_json())
        name = "reused" if reuse else "recomputed"
        records[name] = dumps
        out[name] = {"first_s": round(seconds[0], 3), "median_rest_s": round(statistics.median(seconds[1:]), 3),
                     "all_s": [round(s, 3) for s in seconds]}
    out["identical_records"] = records["reused"] == records["recomputed"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Time one checkpoint's measurement on a finished run, and fingerprint the records for a before/after check.

Measures the first ``--checkpoints`` trained checkpoints of a run (``make demo``'s runs/demo by default)
in one process with one torch thread, as a measurement worker does: one BaseReference, then checkpoint
after checkpoint. The first checkpoint pays the worker's one-off costs (the base's circuits re-found,
tasks built, the base's reusable work done), so the per-checkpoint figure is the median over the rest.
Prints one JSON object with the times and a sha256 of every record, so running it with an older
checkout first on PYTHONPATH gives the "before" and shows whether the records changed.

    .venv/bin/python benchmarks/measure.py --run runs/demo --checkpoints 8 [--profile]
    PYTHONPATH=/path/to/older/checkout/src .venv/bin/python benchmarks/measure.py --run runs/demo --checkpoints 8
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pstats
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--checkpoints", type=int, default=8, help="checkpoints measured")
    parser.add_argument("--profile", action="store_true",
                        help="profile the second checkpoint: circuitdrift functions over 2 %% of its time")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from transformers.utils import logging

    logging.set_verbosity_error()
    import circuitdrift
    from circuitdrift.compare.schema import BaseCircuit
    from circuitdrift.pipeline.config import load_config
    from circuitdrift.pipeline.measure import BaseReference, measure_checkpoint
    from circuitdrift.train.checkpoints import checkpoint_step, list_checkpoints

    config, _ = load_config(args.run / "config.resolved.yaml")
    circuits = {p.stem: BaseCircuit.model_validate_json(p.read_text())
                for p in sorted((args.run / "circuits" / "base").glob("*.json"))}
    folders = sorted(f for run in sorted((args.run / "train").glob("*/*/seed*")) for f in list_checkpoints(run)
                     if checkpoint_step(f))[: args.checkpoints]
    ref = BaseReference(config, circuits)
    seconds, digests, profile = [], [], None
    for index, folder in enumerate(folders):
        profiler = cProfile.Profile() if args.profile and index == 1 else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        record = measure_checkpoint(ref, method="x", seed=0, learning_rate=None, step=checkpoint_step(folder),
                                    folder=folder, exact=False)
        seconds.append(time.perf_counter() - started)
        if profiler is not None:
            profiler.disable()
            profile = _breakdown(profiler, seconds[-1])
        digests.append(hashlib.sha256(record.model_dump_json().encode()).hexdigest()[:16])
    print(json.dumps({"code": str(Path(circuitdrift.__file__).parent), "run": str(args.run),
                      "checkpoints": [str(f.relative_to(args.run)) for f in folders],
                      "first_s": round(seconds[0], 3), "median_rest_s": round(statistics.median(seconds[1:]), 3),
                      "all_s": [round(s, 3) for s in seconds], "sha256": digests,
                      "profile_second_checkpoint_s": profile}, indent=2))


def _breakdown(profiler: cProfile.Profile, total: float) -> dict[str, float]:
    """Cumulative seconds of circuitdrift's own functions that take over 2 % of the checkpoint."""
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (calls, primitive, tottime, cumtime, callers)
    out = {}
    for (filename, _, name), (_, _, _, cumulative, _) in stats.items():
        if "circuitdrift" in filename and cumulative > 0.02 * total:
            out[f"{Path(filename).parent.name}/{Path(filename).name}:{name}"] = round(cumulative, 3)
    return dict(sorted(out.items(), key=lambda item: -item[1]))


if __name__ == "__main__":
    main()

"""Choose GRPO's group size at equal compute: effective prompts per step for G completions per prompt.

A GRPO group whose G completions all get the same reward has zero advantage and gives no gradient. At a
fixed number of completions per step (``--completions``, prompts x G), a larger G wastes fewer groups but
has fewer prompts. This runs the demo's RL recipe (organism, science-qa, constant learning rate with
warm-up, Dr. GRPO) once per G and prints one JSON object: per G, the rollout monitor's share of groups with
reward variance (mean over its windows), the effective prompts per step (prompts x that share), the
completions per step that carry a gradient (effective prompts x G), and greedy accuracy on the validation
split at each checkpoint (selection happens on validation; the test split is never read here).

    .venv/bin/python benchmarks/group_size.py --groups 4 8 16 --completions 128 --steps 150 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path


def one(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    from circuitdrift.evaluate.accuracy import greedy_completions, score_completions
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task
    from circuitdrift.train.run import train

    group, prompts = job["group"], job["completions"] // job["group"]
    config = {"steps": job["steps"], "prompts_per_step": prompts, "learning_rate": job["lr"], "warmup_steps": 10,
              "lr_schedule": "constant_with_warmup", "seed": job["seed"], "checkpoint_steps": job["checkpoints"],
              "rl": {"num_generations": group, "max_completion_length": 4, "loss_type": "dr_grpo", "beta": 0.0,
                     "temperature": 1.0}}
    started = time.time()
    with tempfile.TemporaryDirectory() as out:
        model, tokenizer = load_model("organism", device="cpu")
        checkpoints = train("rl", model, "science-qa", config, out, tokenizer=tokenizer)
        seconds = time.time() - started
        validation = resolve_task("science-qa", split="validation", tokenizer=tokenizer)
        accuracy = {}
        for path in checkpoints:
            texts = greedy_completions(load_model(path, device="cpu")[0], tokenizer, validation, 4)
            accuracy[path.name] = round(score_completions(validation, texts).accuracy, 4)
        summary = json.loads((Path(out) / "train_summary.json").read_text())
    shares = [w["share_groups_with_variance"] for w in summary["rollouts"]["windows"]]
    share = sum(shares) / len(shares)
    return {"group": group, "prompts_per_step": prompts, "seed": job["seed"], "train_s": round(seconds, 1),
            "share_groups_with_variance": round(share, 4), "zero_variance_share": round(1 - share, 4),
            "effective_prompts_per_step": round(prompts * share, 2),
            "completions_with_gradient_per_step": round(prompts * share * group, 1),
            "validation_accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[4, 8, 16], help="group sizes G to compare")
    parser.add_argument("--completions", type=int, default=128, help="completions per step (prompts x G), fixed")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--checkpoints", type=int, nargs="*", default=[50, 100])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one torch thread each")
    args = parser.parse_args()
    bad = [g for g in args.groups if g < 2 or args.completions % g]
    if bad:
        parser.error(f"--groups {bad}: each G must be >= 2 and divide --completions {args.completions}")
    jobs = [{"group": g, "completions": args.completions, "steps": args.steps, "lr": args.lr, "seed": s,
             "checkpoints": args.checkpoints} for g in args.groups for s in args.seeds]
    started = time.time()
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        runs = list(pool.map(one, jobs))
    best = max(runs, key=lambda r: r["effective_prompts_per_step"])
    print(json.dumps({"completions_per_step": args.completions, "steps": args.steps, "lr": args.lr,
                      "runs": runs, "most_effective_prompts": {"group": best["group"],
                                                               "prompts_per_step": best["prompts_per_step"]},
                      "wall_s": round(time.time() - started, 1)}, indent=1))


if __name__ == "__main__":
    main()

"""Try fine-tuning recipes on the shipped organism: held-out accuracy and answer spread at every checkpoint.

Each job is a JSON list ``[method, lr, prompts_per_step, num_generations, steps, checkpoint_every, task,
out_dir]`` with an optional ninth element: a LoRA rank, or a dict of further training settings merged over
these (e.g. ``{"rl": {"beta": 0.1}}``), whose key ``base`` names another model folder to start from (default:
the shipped organism). Jobs run in ``--jobs`` worker processes with one
torch thread each; every job prints one JSON line: training seconds, then per checkpoint (name, greedy
accuracy on the task's test split, entropy of the greedy answers in bits, distinct answers), and for RL the
rollout monitor's windows (index, mean reward, share of groups with reward variance, answer entropy).

    .venv/bin/python benchmarks/recipes.py --jobs 2 '["rl", 1e-4, 32, 4, 30, 10, "science-qa", "runs/r/rl"]'
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def one(job: list) -> dict:
    import torch

    torch.set_num_threads(1)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    from circuitdrift.evaluate.accuracy import greedy_completions, score_completions
    from circuitdrift.evaluate.drift import answer_spread
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task
    from circuitdrift.train.run import train

    method, lr, prompts, generations, steps, every, task_name, out = job[:8]
    config = {"steps": steps, "prompts_per_step": prompts, "learning_rate": lr, "warmup_steps": 3,
              "checkpoint_every": every, "rl": {"num_generations": generations, "max_completion_length": 4}}
    extra = dict(job[8]) if len(job) > 8 and isinstance(job[8], dict) else {}
    base = extra.pop("base", "organism")
    for key, value in extra.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    if len(job) > 8 and not isinstance(job[8], dict):
        config["lora"] = {"r": job[8], "alpha": 2 * job[8]}
    started = time.time()
    model, tokenizer = load_model(base, device="cpu")
    checkpoints = train(method, model, task_name, config, out, tokenizer=tokenizer)
    seconds = time.time() - started
    test = resolve_task(task_name, split="test", tokenizer=tokenizer)
    rows = []
    for path in checkpoints:
        texts = greedy_completions(load_model(path, device="cpu")[0], tokenizer, test, 4)
        accuracy = score_completions(test, texts).accuracy
        spread = answer_spread([test.parse(t) for t in texts])
        rows.append((path.name, round(accuracy, 3), round(spread.entropy_bits, 2), spread.distinct))
    summary = json.loads((checkpoints[0].parent / "train_summary.json").read_text())
    windows = [(w["window"], round(w["mean_reward"], 2), round(w["share_groups_with_variance"], 2),
                round(w["entropy_bits"], 2)) for w in summary.get("rollouts", {}).get("windows", [])]
    return {"job": job, "train_s": round(seconds, 1), "checkpoints": rows, "windows": windows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs_json", nargs="+", help="one JSON list per run (see the module docstring)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    jobs = [json.loads(a) for a in args.jobs_json]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for result in pool.map(one, jobs):
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

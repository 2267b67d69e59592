"""Wall time of circuitdrift's trainers against TRL called directly with the same arguments.

Both sides train the same model (a fresh copy each run), on the same dataset
and the same ``SFTConfig`` / ``GRPOConfig``; the wrapper adds what it is for
(checkpoint-0, the checkpoint schedule, the NaN guard, the run record). Runs
alternate between the two sides; the fastest of ``--repeats`` is reported, in
wall time and in this process's CPU time (the CPU is shared, so wall time of a
single run swings with other jobs; the minimum and the CPU time do much less).
Prints JSON: per method both sides and the overhead in percent.

    .venv/bin/python benchmarks/train.py [--model organism] [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers.trainer_callback import PrinterCallback
from trl import GRPOTrainer, SFTTrainer

from circuitdrift.train import train
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.data import rl_dataset, sft_dataset
from circuitdrift.train.grpo import grpo_args
from circuitdrift.train.sft import sft_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: the toy task is a test helper
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer  # noqa: E402


def setup(model_name: str):
    if model_name == "toy":
        tokenizer = toy_tokenizer()
        return toy_model(tokenizer, hidden=128, n_layers=4, n_heads=4), tokenizer, toy_task(tokenizer, n=128)
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task

    model, tokenizer = load_model(model_name, device="cpu")
    return model, tokenizer, resolve_task("science-qa", split="train", n=256)


def direct(method: str, model, tokenizer, task, config: TrainConfig, out: Path) -> None:
    if method == "sft":
        trainer = SFTTrainer(model=model, args=sft_args(config, out), train_dataset=sft_dataset(task, config),
                             processing_class=tokenizer)
    else:
        trainer = GRPOTrainer(model=model, reward_funcs=task.reward, args=grpo_args(config, out),
                              train_dataset=rl_dataset(task, config), processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # both sides quiet: stdout carries this script's JSON
    trainer.train()


def wrapped(method: str, model, tokenizer, task, config: TrainConfig, out: Path) -> None:
    train(method, model, task, config, out, tokenizer=tokenizer)


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy", help="'toy' (random-init, hidden 128) or a model name/folder")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps a shared CPU's noise down)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base, tokenizer, task = setup(args.model)
    config = TrainConfig(steps=args.steps, prompts_per_step=8, learning_rate=1e-4,
                         rl={"num_generations": 8, "max_completion_length": 4})
    report = {"model": args.model, "steps": args.steps, "repeats": args.repeats, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("sft", "rl"):
            times: dict[str, list[tuple[float, float]]] = {"direct": [], "wrapper": []}
            for repeat in range(args.repeats + 1):  # the first round warms caches and is dropped
                for side, fn in (("direct", direct), ("wrapper", wrapped)):
                    out = Path(tmp) / f"{method}-{side}-{repeat}"
                    seconds = timed(fn, method, copy.deepcopy(base), tokenizer, task, config, out)
                    if repeat:
                        times[side].append(seconds)
                    shutil.rmtree(out)
            entry = {}
            for k, kind in enumerate(("wall", "cpu")):
                d = min(t[k] for t in times["direct"])
                w = min(t[k] for t in times["wrapper"])
                entry[kind] = {"direct_s": round(d, 3), "wrapper_s": round(w, 3),
                               "overhead_pct": round(100 * (w - d) / d, 2),
                               "direct_all_s": [round(t[k], 3) for t in times["direct"]],
                               "wrapper_all_s": [round(t[k], 3) for t in times["wrapper"]]}
            report[method] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Per-step cost of SFT and RL through circuitdrift's trainers, and where an RL step's time goes.

One torch thread (as the pipeline's workers use), the shipped organism, the
science-qa train split. For RL the step is split into rollout generation and
reward (TRL's ``_generate_and_score_completions``), the loss's forward pass
(``compute_loss``) and the backward pass plus optimizer (the rest), by timing
those methods of the live trainer. Prints JSON.

    .venv/bin/python benchmarks/steps.py [--steps 10] [--prompts 16] [--generations 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step, and of named trainer methods within it."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.parts: dict[str, float] = {}
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter() - self._start)

    def wrap(self, obj, name: str, label: str) -> None:
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.parts[label] = self.parts.get(label, 0.0) + time.perf_counter() - started

        setattr(obj, name, timed)


def measure(method: str, steps: int, prompts: int, generations: int) -> dict:
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task
    from circuitdrift.train import run as run_module
    from circuitdrift.train.config import TrainConfig

    model, tokenizer = load_model("organism", device="cpu")
    task = resolve_task("science-qa", split="train", tokenizer=tokenizer)
    config = TrainConfig(steps=steps, prompts_per_step=prompts, learning_rate=1e-4,
                         rl={"num_generations": generations, "max_completion_length": 4})
    timer = StepTimer()
    build = run_module.sft_trainer if method == "sft" else run_module.grpo_trainer

    def instrumented(*args, **kwargs):
        trainer = build(*args, **kwargs)
        if method == "rl":
            timer.wrap(trainer, "_generate_and_score_completions", "generation_and_reward")
            timer.wrap(trainer, "compute_loss", "loss_forward")
        return trainer

    setattr(run_module, "sft_trainer" if method == "sft" else "grpo_trainer", instrumented)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            run_module.train(method, model, task, config, Path(tmp) / method, tokenizer=tokenizer,
                             callbacks=[timer])
            total = time.perf_counter() - started
    finally:
        setattr(run_module, "sft_trainer" if method == "sft" else "grpo_trainer", build)
    later = timer.steps[1:] or timer.steps  # the first step pays one-off costs
    out = {"steps": steps, "rows_per_step": prompts * (generations if method == "rl" else 1),
           "run_seconds": round(total, 2), "median_step_seconds": round(sorted(later)[len(later) // 2], 3)}
    if method == "rl":
        step_total = sum(timer.steps)
        parts = {k: round(v / step_total, 3) for k, v in timer.parts.items()}
        parts["backward_and_optimizer"] = round(1 - sum(parts.values()), 3)
        out["share_of_step"] = parts
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--generations", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"torch_threads": 1, "prompts_per_step": args.prompts, "num_generations": args.generations}
    for method in ("sft", "rl"):
        result[method] = measure(method, args.steps, args.prompts, args.generations)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

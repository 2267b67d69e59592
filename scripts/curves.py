"""Learning curves: train SFT and RL on one budget, then measure target accuracy at every checkpoint.

This is the demonstration behind ``docs/training.md``: both methods start
from the same base, see the same prompts in the same order for the same
number of steps, and are scored by the same grader on the held-out split. For
RL it also reports the learning signal TRL logs per step: mean reward and the
fraction of groups whose rewards differ (the groups that give a gradient).

    python scripts/curves.py --model organism --task science-qa --config cfg.yaml --out runs/curves
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from circuitdrift.evaluate.accuracy import target_accuracy
from circuitdrift.io import write_json
from circuitdrift.models.load import load_model
from circuitdrift.tasks.registry import resolve_task
from circuitdrift.train.checkpoints import checkpoint_step
from circuitdrift.train.config import TrainConfig, load_train_config
from circuitdrift.train.run import train, training_log


def learning_curves(
    model: str, task: str, config: TrainConfig, out_dir: str | Path, eval_n: int | None = 200,
    methods: tuple[str, ...] = ("sft", "rl"), max_new_tokens: int = 4,
) -> dict:
    """Train each method into ``out_dir/<method>`` and score every checkpoint on the task's test split."""
    out_dir = Path(out_dir)
    from circuitdrift.models.load import load_tokenizer

    test = resolve_task(task, split="test", n=eval_n, seed=config.seed, tokenizer=load_tokenizer(model))
    curves: dict = {"model": model, "task": task, "config": config.model_dump(mode="json"), "eval_n": len(test)}
    for method in methods:
        start = time.perf_counter()
        checkpoints = train(method, model, task, config, out_dir / method)
        seconds = time.perf_counter() - start
        points = []
        for path in checkpoints:
            fine_tuned, tokenizer = load_model(path, device="cpu")
            result = target_accuracy(fine_tuned, tokenizer, test, max_new_tokens=max_new_tokens)
            points.append({"step": checkpoint_step(path), **result.to_dict()})
        log = training_log(out_dir / method)
        signal = [
            {k: entry[k] for k in ("step", "loss", "reward", "reward_std", "frac_reward_zero_std") if k in entry}
            for entry in log
            if "loss" in entry
        ]
        curves[method] = {"train_seconds": round(seconds, 1), "accuracy": points, "log": signal}
    write_json(out_dir / "curves.json", curves)
    return curves


_WINDOW_HEADERS = {"sft": "SFT mean loss", "rl": "RL mean reward / groups with reward variance / loss"}


def _windows(log: list[dict], size: int) -> list[tuple[int, int, list[dict]]]:
    return [(log[i]["step"], log[min(i + size, len(log)) - 1]["step"], log[i : i + size])
            for i in range(0, len(log), size)]


def _mean(entries: list[dict], key: str) -> float:
    return sum(e[key] for e in entries) / len(entries)


def _window_cell(method: str, entries: list[dict]) -> str:
    if method == "sft":
        return f"{_mean(entries, 'loss'):.3f}"
    varied = 1 - _mean(entries, "frac_reward_zero_std")
    return f"{_mean(entries, 'reward'):.3f} / {varied:.2f} / {_mean(entries, 'loss'):+.4f}"


def markdown(curves: dict, window: int = 10) -> str:
    """Accuracy per checkpoint for each method, then the training log averaged over ``window`` steps."""
    methods = [m for m in ("sft", "rl") if m in curves]
    steps = sorted({p["step"] for m in methods for p in curves[m]["accuracy"]})
    lines = ["| step | " + " | ".join(f"{m} accuracy (unparsable)" for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for step in steps:
        cells = []
        for m in methods:
            point = next((p for p in curves[m]["accuracy"] if p["step"] == step), None)
            cells.append(f"{point['accuracy']:.3f} ({point['unparsable']})" if point else "")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += ["", "| steps | " + " | ".join(_WINDOW_HEADERS[m] for m in methods) + " |",
              "|---|" + "---|" * len(methods)]
    windows = {m: _windows(curves[m]["log"], window) for m in methods}
    for k, (first, last, _) in enumerate(windows[methods[0]]):
        lines.append(f"| {first}-{last} | " + " | ".join(_window_cell(m, windows[m][k][2]) for m in methods) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="SFT and RL learning curves on one budget")
    parser.add_argument("--model", default="organism")
    parser.add_argument("--task", default="science-qa")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--eval-n", type=int, default=200)
    parser.add_argument("--methods", default="sft,rl")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy CPU)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = load_train_config(args.config)
    curves = learning_curves(args.model, args.task, config, args.out, args.eval_n, tuple(args.methods.split(",")))
    print(markdown(curves))
    print(json.dumps({m: curves[m]["train_seconds"] for m in ("sft", "rl") if m in curves}))


if __name__ == "__main__":
    main()

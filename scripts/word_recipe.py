"""The word-label SFT recipe pilot: does SFT on the option's word pass the base on the validation split?

Trains ``sft-word`` (SFT whose label is the correct option's word, train/run.py) on the organism's
science-qa at one recipe for several seeds, one worker process per seed (one torch thread each),
and grades every checkpoint on the VALIDATION split by greedy generation with the task's grader
(letter or word). Prints one JSON object: the recipe, the base's validation accuracy, each seed's
accuracy per checkpoint, the first checkpoint above the base, the label NLLs under the base, and
the wall time. docs/training.md quotes its output.

    nice -n 10 python scripts/word_recipe.py --seeds 0 1 2 --steps 200 --lr 1e-4 --warmup 10 --out /tmp/pilot
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

TASK = "science-qa"


def run_seed(job: tuple) -> dict:
    """One seed: train sft-word into ``out/seed<k>``, grade every checkpoint on validation."""
    seed, recipe, out, method = job
    import torch

    torch.set_num_threads(1)
    from circuitdrift.evaluate.accuracy import target_accuracy
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task
    from circuitdrift.train.checkpoints import checkpoint_step
    from circuitdrift.train.config import TrainConfig
    from circuitdrift.train.run import train

    config = TrainConfig(**recipe, seed=seed)
    model, tokenizer = load_model("organism", dtype="float32", device="cpu")
    validation = resolve_task(TASK, split="validation", tokenizer=tokenizer)
    start = time.perf_counter()
    checkpoints = train(method, model, TASK, config, Path(out) / f"{method}-seed{seed}", tokenizer=tokenizer)
    train_seconds = time.perf_counter() - start
    points = []
    for path in checkpoints:
        fine_tuned, tok = load_model(path, dtype="float32", device="cpu")
        points.append({"step": checkpoint_step(path),
                       "accuracy": target_accuracy(fine_tuned, tok, validation, max_new_tokens=4).accuracy})
    return {"seed": seed, "train_seconds": round(train_seconds, 1),
            "seconds_per_step": round(train_seconds / config.steps, 3), "validation": points}


def label_nlls(train_examples: int | None) -> dict:
    """Each SFT label's NLL under the base on the training split (the letter and the word)."""
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task
    from circuitdrift.train.label_nll import label_nll

    model, tokenizer = load_model("organism", dtype="float32", device="cpu")
    task = resolve_task(TASK, split="train", n=train_examples, tokenizer=tokenizer)
    return {"sft": label_nll(model, tokenizer, task).to_dict(),
            "sft-word": label_nll(model, tokenizer, task.with_label("word")).to_dict()}


def answer_mass() -> dict:
    """The base's next-token mass at the answer position, mean over the training questions: on the four
    letters, on the correct letter, on the correct option's word, on the four option words."""
    import torch

    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task

    model, tokenizer = load_model("organism", dtype="float32", device="cpu")
    task = resolve_task(TASK, split="train", tokenizer=tokenizer)

    def first(text: str) -> int:  # letters and the organism's option words are one token each
        return tokenizer(text, add_special_tokens=False).input_ids[0]

    letters = [first(letter) for letter in "ABCD"]
    sums = {"any_letter": 0.0, "correct_letter": 0.0, "correct_word": 0.0, "any_option_word": 0.0}
    with torch.no_grad():
        for ex in task.examples:
            ids = torch.tensor([tokenizer(ex.clean, add_special_tokens=False).input_ids])
            probs = torch.softmax(model(input_ids=ids).logits[0, -1].double(), -1)
            words = [first(option) for option in ex.options]
            right = "ABCD".index(ex.answer)
            sums["any_letter"] += float(probs[letters].sum())
            sums["correct_letter"] += float(probs[letters[right]])
            sums["correct_word"] += float(probs[words[right]])
            sums["any_option_word"] += float(probs[words].sum())
    return {key: value / len(task) for key, value in sums.items()}


def chat_probe_accuracy(n: int = 100) -> dict:
    """The base's teacher-forced accuracy on the factual probe, plain and as a chat turn (test split)."""
    from circuitdrift.circuits.metrics import task_accuracy
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task

    model, tokenizer = load_model("organism", dtype="float32", device="cpu")
    return {name: task_accuracy(model, tokenizer, resolve_task(name, split="test", n=n, tokenizer=tokenizer))
            for name in ("factual", "factual-chat")}


def base_validation() -> float:
    from circuitdrift.evaluate.accuracy import target_accuracy
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task

    model, tokenizer = load_model("organism", dtype="float32", device="cpu")
    return target_accuracy(model, tokenizer, resolve_task(TASK, split="validation", tokenizer=tokenizer),
                           max_new_tokens=4).accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32, help="prompts per step")
    parser.add_argument("--every", type=int, default=25, help="checkpoint every N steps")
    parser.add_argument("--method", default="sft-word", choices=["sft-word", "sft", "rl"])
    parser.add_argument("--jobs", type=int, default=3, help="worker processes (one seed each)")
    parser.add_argument("--out", help="folder for the checkpoints")
    parser.add_argument("--precondition-only", action="store_true",
                        help="print the label NLLs and the base's answer mass only (seconds), train nothing")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.precondition_only:
        print(json.dumps({"task": TASK, "split": "train", "label_nll": label_nlls(None),
                          "base_answer_mass": answer_mass(), "base_probe_accuracy": chat_probe_accuracy()},
                         indent=1))
        return
    if not args.out:
        parser.error("--out is required to train")
    recipe = {"steps": args.steps, "prompts_per_step": args.batch, "learning_rate": args.lr,
              "lr_schedule": "constant_with_warmup", "warmup_steps": args.warmup, "checkpoint_every": args.every,
              # RL as in configs/demo.yaml: 4 completions per prompt, a letter or a word and the end of turn
              "rl": {"num_generations": 4, "max_completion_length": 4, "temperature": 1.0, "loss_type": "dr_grpo",
                     "beta": 0.0}}
    start = time.perf_counter()
    jobs = [(seed, recipe, args.out, args.method) for seed in args.seeds]
    with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
        waiting = pool.map_async(run_seed, jobs)
        base = base_validation()
        nll = label_nlls(None)
        seeds = waiting.get()
    for run in seeds:
        above = [p["step"] for p in run["validation"] if p["accuracy"] > base]
        run["first_step_above_base"] = above[0] if above else None
        run["final_accuracy"] = run["validation"][-1]["accuracy"]
    passed = sum(run["validation"][-1]["accuracy"] > base for run in seeds)
    print(json.dumps({"method": args.method, "task": TASK, "recipe": recipe, "eval_split": "validation",
                      "base_validation_accuracy": base, "label_nll": nll, "seeds": seeds,
                      "seeds_above_base_at_end": f"{passed}/{len(seeds)}",
                      "wall_seconds": round(time.perf_counter() - start, 1),
                      "load_average": os.getloadavg()[0]}, indent=1))


if __name__ == "__main__":
    main()

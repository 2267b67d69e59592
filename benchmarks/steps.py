"""Per-step cost of SFT and RL through circuitdrift's trainers, phase by phase, TRL's stock path beside the fast one.

One torch thread (as the pipeline's workers use), the shipped organism, the
science-qa train split, and the demo's training recipe (configs/demo.yaml's
``train`` block: 32 prompts per step, RL 4 completions of at most 4 tokens,
Dr. GRPO, beta 0) for ``--steps`` steps. Each run is timed twice: with TRL's
own scoring forward (``stock``: ``shared_prefix=False``)
and with circuitdrift's default (``fast``: train/shared_prefix.py), from the
same base weights and seed. A phase is the wall time spent in the named
trainer methods, per step (median over the steps after the first, which pays
one-off costs), in wall time (``seconds_per_step``) and in this process's CPU
time (``cpu_seconds_per_step``: with one torch thread, the time the step
computed, which other jobs on the machine inflate far less than the wall time):

* RL: ``generation`` (``model.generate`` through TRL's ``_generate``),
  ``reward`` (``_calculate_rewards``: the task's grader and the rollout
  monitor), ``rollout_bookkeeping`` (the rest of TRL's
  ``_generate_and_score_completions``: tokenising, padding, advantages,
  metrics), ``loss_forward`` (``compute_loss``), ``backward``
  (``accelerator.backward``), ``optimizer`` (``optimizer.step``), ``other``
  (the step's remainder: zero_grad, clipping, scheduler, logging, callbacks,
  data loading). A step is the time between two ``on_step_end`` calls.
* SFT: ``loss_forward``, ``backward``, ``optimizer``, ``other``.

``max_weight_difference`` is the largest absolute difference between the two
paths' weights after the run (0 where the fast path is bit-identical),
``max_loss_difference`` the same for the logged per-step loss, and for RL
``same_reward_every_step`` says whether every step's mean reward (so, in
practice, its rollouts) came out the same. ``sft_floor`` times the matrix
products of one SFT step alone (:func:`sft_floor`): the least any SFT step
at this recipe can cost on this core. ``unread_cut`` switches the last layer's MLP at unread positions
(models/unread.py) on and off in turn in one process, over one SFT batch and one GRPO loss: an A/B that the
machine's drift between separate runs cannot blur. ``precision`` does the same for the arithmetic's precision
over one SFT batch: float32 (the demo's), bf16 autocast, and bf16 autocast with attention kept in float32
(:func:`precision_cut`). Prints JSON.

    .venv/bin/python benchmarks/steps.py [--steps 8] [--only sft|rl|unread|precision]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


class PhaseTimer(TrainerCallback):
    """Wall and CPU time of every optimizer step (end to end) and of named trainer methods within it."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []  # {"wall": s, "cpu": s} per step
        self.phases: list[dict[tuple[str, str], float]] = []
        self._current: dict[tuple[str, str], float] = {}
        self._last_end: dict[str, float] = {}

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None:
            self.wrap(optimizer, "step", "optimizer")
        self._last_end = _clocks()

    def on_step_end(self, args, state, control, **kwargs):
        now = _clocks()
        self.steps.append({clock: now[clock] - self._last_end[clock] for clock in now})
        self.phases.append(self._current)
        self._current = {}
        self._last_end = now

    def wrap(self, obj, name: str, label: str) -> None:
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            started = _clocks()
            try:
                return inner(*args, **kwargs)
            finally:
                ended = _clocks()
                for clock in ended:
                    key = (clock, label)
                    self._current[key] = self._current.get(key, 0.0) + ended[clock] - started[clock]

        setattr(obj, name, timed)

    def breakdown(self, clock: str) -> dict:
        """Median seconds per step of each phase over the steps after the first, and the step itself."""
        later = list(range(1, len(self.steps))) or [0]
        labels = sorted({label for phases in self.phases for (c, label) in phases if c == clock})
        per_step = {label: [self.phases[i].get((clock, label), 0.0) for i in later] for label in labels}
        if "rollout" in per_step:  # the part of TRL's rollout method outside generate and the reward
            rollout = per_step.pop("rollout")
            per_step["rollout_bookkeeping"] = [r - per_step.get("generation", [0.0] * len(later))[k]
                                               - per_step.get("reward", [0.0] * len(later))[k]
                                               for k, r in enumerate(rollout)]
        step = [self.steps[i][clock] for i in later]
        per_step["other"] = [s - sum(v[k] for v in per_step.values()) for k, s in enumerate(step)]
        out = {label: round(_median(values), 4) for label, values in per_step.items()}
        out["step"] = round(_median(step), 4)
        return out


def _clocks() -> dict[str, float]:
    """Wall time, and this process's CPU time (with one torch thread: the time it computed, whatever the load)."""
    return {"wall": time.perf_counter(), "cpu": time.process_time()}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def demo_config(steps: int):
    from circuitdrift.engine.config import read_mapping
    from circuitdrift.train.config import parse_train_config

    train = dict(read_mapping(DEMO_CONFIG)["train"])
    # no checkpoints inside the timed run; a run shorter than the warm-up warms up for all of it
    train.update(steps=steps, checkpoint_every=None, checkpoint_steps=[],
                 warmup_steps=min(train.get("warmup_steps", 0), steps))
    return parse_train_config(train, source=str(DEMO_CONFIG))


def measure(method: str, steps: int, fast: bool, out_dir: Path) -> tuple[dict, dict]:
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task
    from circuitdrift.train import run as run_module

    model, tokenizer = load_model("organism", device="cpu")
    task = resolve_task("science-qa", split="train", tokenizer=tokenizer)
    config = demo_config(steps)
    timer = PhaseTimer()
    build = run_module.TRAINERS[method]
    switch = {"shared_prefix": fast}

    built = []

    def instrumented(*args, **kwargs):
        trainer = build(*args, **kwargs, **switch)
        built.append(trainer)
        timer.wrap(trainer, "compute_loss", "loss_forward")
        timer.wrap(trainer.accelerator, "backward", "backward")
        if method == "rl":
            timer.wrap(trainer, "_generate_and_score_completions", "rollout")
            timer.wrap(trainer, "_generate", "generation")
            timer.wrap(trainer, "_calculate_rewards", "reward")
        return trainer

    run_module.TRAINERS[method] = instrumented
    try:
        started = time.perf_counter()
        run_module.train(method, model, task, config, out_dir, tokenizer=tokenizer, callbacks=[timer])
        total = time.perf_counter() - started
    finally:
        run_module.TRAINERS[method] = build
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rows = config.prompts_per_step * (config.rl.num_generations if method == "rl" else 1)
    log = [entry for entry in run_module.training_log(out_dir) if "loss" in entry]
    timing = {"trainer": type(built[0]).__name__, "rows_per_step": rows, "run_seconds": round(total, 2),
              "seconds_per_step": timer.breakdown("wall"),
              "cpu_seconds_per_step": timer.breakdown("cpu")}
    if hasattr(built[0], "prompt_passes_reused"):  # GRPO: loss calls the rollouts' prompt pass served
        timing["prompt_passes_reused"] = built[0].prompt_passes_reused
    return timing, {"weights": weights, "log": log}


def compare(method: str, steps: int, root: Path) -> dict:
    stock, stock_run = measure(method, steps, fast=False, out_dir=root / f"{method}-stock")
    fast, fast_run = measure(method, steps, fast=True, out_dir=root / f"{method}-fast")
    before, after = stock_run["weights"], fast_run["weights"]
    difference = max((before[k] - after[k]).abs().max().item() for k in before)
    speedup = stock["seconds_per_step"]["step"] / fast["seconds_per_step"]["step"]
    cpu_speedup = stock["cpu_seconds_per_step"]["step"] / fast["cpu_seconds_per_step"]["step"]
    pairs = list(zip(stock_run["log"], fast_run["log"], strict=True))
    out = {"stock": stock, "fast": fast, "speedup": round(speedup, 2), "cpu_speedup": round(cpu_speedup, 2),
           "max_weight_difference": difference,
           "max_loss_difference": max(abs(a["loss"] - b["loss"]) for a, b in pairs)}
    if method == "rl":  # the same rollouts give the same rewards at every step
        out["same_reward_every_step"] = all(a["reward"] == b["reward"] for a, b in pairs)
    return out


def first_sft_batch(root: Path, folder: str):
    """The organism under the demo's SFT trainer (in training mode) and the trainer's first batch; with the
    tokenizer, the science-qa train task and the config the trainer was given."""
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task
    from circuitdrift.train.sft import sft_trainer

    model, tokenizer = load_model("organism", device="cpu")
    task = resolve_task("science-qa", split="train", tokenizer=tokenizer)
    config = demo_config(12)
    trainer = sft_trainer(model, tokenizer, task, config=config, output_dir=root / folder)
    return trainer.model.train(), next(iter(trainer.get_train_dataloader())), tokenizer, task, config


def fused_sft_loss(model, batch) -> torch.Tensor:
    """One SFT batch's loss as the fast SFT trainer computes it: TRL's fused forward on the shared-prefix
    backbone, the LM head at the scored positions only."""
    from circuitdrift.train.shared_prefix import compact_lm_head, scored_positions, shared_prefix_backbone

    with compact_lm_head(), shared_prefix_backbone(model, read=scored_positions(batch)):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                     fused_lm_head=True).loss


def in_turn(model, loss_of, modes: dict, repeats: int) -> tuple[dict[str, float], dict[str, tuple]]:
    """``loss_of()``'s forward and backward under each of ``modes`` (name -> context manager factory) in turn,
    ``repeats`` rounds after a warm-up one, in one process: the machine's drift over minutes cancels. Each
    mode's median CPU seconds, and its last round's ``(loss, {parameter: gradient})``."""
    seconds, results = {name: [] for name in modes}, {}
    for _ in range(repeats + 1):
        for name, mode in modes.items():
            model.zero_grad()
            started = time.process_time()
            with mode():
                loss = loss_of()
            loss.backward()
            seconds[name].append(time.process_time() - started)
            results[name] = (loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()})
    return {name: _median(values[1:]) for name, values in seconds.items()}, results


def largest_gradient_difference(a: dict, b: dict) -> float:
    return max((a[n] - b[n]).abs().max().item() for n in a)


def sft_floor(root: Path, repeats: int = 5) -> dict:
    """The matrix products an SFT step cannot avoid, timed alone on this core: every linear layer of the
    backbone, forward and backward, over the first batch's tokens with its shared start counted once (what
    the fast path runs). No attention, norms, loss, optimizer or TRL: a lower bound on the step."""
    from circuitdrift.models.prefix import common_prefix_length

    model, batch, *_ = first_sft_batch(root, "floor")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    shared = common_prefix_length(ids, mask)
    tokens = shared + ids.size(0) * (ids.size(1) - shared)
    backbone = getattr(model, model.base_model_prefix)
    linears = [m.weight.detach() for m in backbone.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(tokens, w.size(1)) for w in linears]
    seconds = []
    for _ in range(repeats + 1):
        started = time.process_time()
        for x, w in zip(inputs, linears, strict=True):
            x, w = x.requires_grad_(), w.clone().requires_grad_()
            torch.nn.functional.linear(x, w).sum().backward()
        seconds.append(time.process_time() - started)
    gflop = sum(6 * tokens * w.numel() for w in linears) / 1e9
    best = _median(seconds[1:])
    return {"batch": list(ids.shape), "shared_start": shared, "tokens": tokens, "gflop": round(gflop, 2),
            "cpu_seconds": round(best, 4), "gflop_per_second": round(gflop / best, 1)}


def unread_cut(root: Path, repeats: int = 16) -> dict:
    """The last layer's MLP only where read (models/unread.py), switched on and off in turn in one process, so
    that the machine's drift over minutes cancels: the forward and backward of one SFT batch (TRL's fused
    forward, as the fast SFT trainer calls it) and of GRPO's loss on 32 prompts x G sampled completions
    (the prompt pass and the completion tokens). Median CPU seconds of each, and the largest difference of the
    loss and of any gradient between the two."""
    import contextlib

    from circuitdrift.models import unread
    from circuitdrift.models.generate import left_pad
    from circuitdrift.models.methods import replaced_method
    from circuitdrift.train.prompt_pass import completion_logps

    model, batch, tokenizer, task, config = first_sft_batch(root, "unread")
    rows = [tokenizer(e.clean).input_ids for e in task.examples[:config.prompts_per_step]]
    prompts, prompt_mask = left_pad(rows, tokenizer.pad_token_id, torch.device("cpu"))
    group = config.rl.num_generations
    prompts, prompt_mask = prompts.repeat_interleave(group, 0), prompt_mask.repeat_interleave(group, 0)
    torch.manual_seed(0)
    with torch.no_grad():
        sampled = model.generate(input_ids=prompts, attention_mask=prompt_mask, do_sample=True, top_k=0,
                                 max_new_tokens=config.rl.max_completion_length,
                                 min_new_tokens=config.rl.max_completion_length, pad_token_id=tokenizer.pad_token_id)
    rl_mask = torch.cat([prompt_mask, torch.ones_like(sampled[:, prompts.size(1):])], dim=1)

    def rl() -> torch.Tensor:
        logps, _, _ = completion_logps(model, sampled, rl_mask, completion_length=config.rl.max_completion_length,
                                       temperature=config.rl.temperature)
        return -logps.sum() / logps.numel()

    modes = {"read_only": contextlib.nullcontext,
             "everywhere": lambda: replaced_method(unread, "last_layer_mlp", lambda *args, **kwargs: None)}
    out = {}
    for name, loss_of in (("sft", lambda: fused_sft_loss(model, batch)), ("rl_loss", rl)):
        seconds, results = in_turn(model, loss_of, modes, repeats)
        (loss_a, grads_a), (loss_b, grads_b) = results["read_only"], results["everywhere"]
        out[name] = {mode: round(value, 4) for mode, value in seconds.items()} | {
            "max_loss_difference": abs(loss_a - loss_b),
            "max_gradient_difference": largest_gradient_difference(grads_a, grads_b)}
    return out


def precision_cut(root: Path, repeats: int = 12) -> dict:
    """One SFT batch's forward and backward (TRL's fused forward, as the fast SFT trainer calls it) in float32,
    under bf16 autocast, and under bf16 autocast with the attention itself in float32, in turn in one process.
    Median CPU seconds of each, and each one's loss and largest gradient difference from float32: what a
    lower-precision recipe would buy on this CPU (its matrix products are ~3x faster in bf16; its
    attention's backward is not)."""
    import contextlib

    import torch.nn.functional as F

    from circuitdrift.models.methods import replaced_method

    model, batch, *_ = first_sft_batch(root, "precision")
    sdpa = F.scaled_dot_product_attention

    def float32_attention(q, k, v, *args, **kwargs):
        with torch.autocast("cpu", enabled=False):
            return sdpa(q.float(), k.float(), v.float(), *args, **kwargs).to(q.dtype)

    @contextlib.contextmanager
    def bf16_float32_attention():
        with replaced_method(F, "scaled_dot_product_attention", float32_attention), \
                torch.autocast("cpu", dtype=torch.bfloat16):
            yield

    modes = {"float32": contextlib.nullcontext,
             "bf16_autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
             "bf16_autocast_float32_attention": bf16_float32_attention}
    seconds, results = in_turn(model, lambda: fused_sft_loss(model, batch), modes, repeats)
    loss32, grads32 = results["float32"]
    return {name: {"cpu_seconds": round(seconds[name], 4), "loss_difference": abs(loss - loss32),
                   "max_gradient_difference": largest_gradient_difference(grads, grads32)}
            for name, (loss, grads) in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--only", choices=("sft", "rl", "unread", "precision"), default=None,
                        help="one method, or only the last-layer-MLP switch (unread_cut) or the precision A/B")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = demo_config(args.steps)
    result = {"torch_threads": torch.get_num_threads(), "load_average_before": os.getloadavg(),
              "steps": args.steps, "prompts_per_step": config.prompts_per_step,
              "num_generations": config.rl.num_generations,
              "max_completion_length": config.rl.max_completion_length}
    with tempfile.TemporaryDirectory() as tmp:
        for method in {None: ("sft", "rl"), "unread": (), "precision": ()}.get(args.only, (args.only,)):
            result[method] = compare(method, args.steps, Path(tmp))
        if args.only in (None, "sft"):
            result["sft_floor"] = sft_floor(Path(tmp))
        if args.only in (None, "unread"):
            result["unread_cut"] = unread_cut(Path(tmp))
        if args.only in (None, "precision"):
            result["precision"] = precision_cut(Path(tmp))
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

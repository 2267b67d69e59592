"""The GPU benchmark behind benchmarks/gpu.sh: the paper's shape, random init, one JSON.

At the Qwen2.5-3B shape (36 layers, hidden 2048, 16 query / 2 KV heads, MLP 11008,
vocabulary 151,936; random init, bf16 on a GPU): head scoring by attribution,
exact patching and CMAP (exact and attribution), one SFT step and one GRPO step
(group 64, rollouts through vLLM when it is installed and a GPU is there), with
wall time, tokens per second and peak memory of each. ``--tiny`` runs the same
code at a tiny shape on CPU in seconds, so the script is known to work before a
GPU is lent. Nothing is written but the JSON on stdout (trainer output goes to a
temporary folder; no checkpoint is saved).

    bash benchmarks/gpu.sh            # a GPU machine, under 8 minutes
    bash benchmarks/gpu.sh --tiny     # CPU, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import json
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Qwen2Config, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers.toy: the chat task trainers take

from circuitdrift.circuits.crossmodel import cross_model_patch  # noqa: E402
from circuitdrift.circuits.scoring import head_scores, plain_forward_seconds  # noqa: E402
from circuitdrift.models.load import resolve_device  # noqa: E402
from circuitdrift.tasks.base import Example, Task  # noqa: E402
from circuitdrift.train.config import TrainConfig  # noqa: E402
from circuitdrift.train.grpo import grpo_trainer  # noqa: E402
from circuitdrift.train.sft import sft_trainer  # noqa: E402
from tests.helpers.toy import toy_task, toy_tokenizer  # noqa: E402

SHAPES = {
    "qwen2.5-3b": dict(num_hidden_layers=36, hidden_size=2048, intermediate_size=11008, num_attention_heads=16,
                       num_key_value_heads=2, vocab_size=151936),
    "tiny": dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=0),  # 0: the tokenizer's size
}


class NoSave(TrainerCallback):
    """The benchmark times steps; it writes no checkpoint (a 3B one with optimizer state is ~36 GB)."""

    def on_step_end(self, args, state, control, **kwargs):
        control.should_save = False
        return control


def build_model(shape: str, vocab: int, dtype: torch.dtype, device: torch.device, seed: int):
    sizes = dict(SHAPES[shape])
    sizes["vocab_size"] = max(sizes["vocab_size"], vocab)
    config = Qwen2Config(**sizes, max_position_embeddings=4096, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
    return model.to(device).eval()


def synthetic_task(words: list[str], n: int, seq_len: int, seed: int) -> Task:
    """Random word sequences; the counterfactual replaces one word (same length)."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        seq = [rng.choice(words) for _ in range(seq_len)]
        corrupt = list(seq)
        corrupt[rng.randrange(seq_len)] = rng.choice(words)
        examples.append(Example(" ".join(seq), " ".join(corrupt), " " + rng.choice(words)))
    return Task("synthetic", examples)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    """Peak GPU memory since the last reset; on CPU the process's peak resident memory (never reset)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def timed(fn, device: torch.device):
    reset_peak(device)
    started = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return value, time.perf_counter() - started, peak_gib(device)


def heads_section(model, tokenizer, task, device, batch_size: int) -> dict:
    tuned = build_model_like(model)
    tokens = sum(len(tokenizer(ex.clean).input_ids) + 1 for ex in task.examples)
    plain_forward_seconds(model, tokenizer, task, batch_size)  # warm-up (kernels, allocator)
    forward_s = plain_forward_seconds(model, tokenizer, task, batch_size)
    out = {"n_examples": len(task), "tokens": tokens, "forward_s": forward_s}
    runs = {
        "attribution": lambda: head_scores(model, tokenizer, task, method="attribution", batch_size=batch_size),
        "exact": lambda: head_scores(model, tokenizer, task, method="exact", batch_size=batch_size),
        "cmap_attribution": lambda: cross_model_patch(model, tuned, tokenizer, task, method="attribution",
                                                      batch_size=batch_size),
        "cmap_exact": lambda: cross_model_patch(model, tuned, tokenizer, task, method="exact", batch_size=batch_size),
    }
    for name, run in runs.items():
        scores, seconds, peak = timed(run, device)
        out[name] = {"seconds": seconds, "tokens_per_s": tokens / seconds, "peak_memory_gib": peak,
                     "finite": bool(torch.isfinite(scores.scores).all())}
    return out


def build_model_like(model):
    """A "fine-tuned" copy: every weight nudged, as a short fine-tuning run would."""
    import copy

    tuned = copy.deepcopy(model)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.02 * p.abs().mean() * torch.randn_like(p))
    return tuned


def train_section(method: str, model, tokenizer, task, device, group: int, use_vllm: bool) -> dict:
    config = TrainConfig(steps=1, prompts_per_step=1 if method == "rl" else 8, learning_rate=1e-6,
                         bf16=device.type == "cuda", gradient_checkpointing=device.type == "cuda",
                         rl={"num_generations": group, "max_completion_length": 16, "use_vllm": use_vllm})
    with tempfile.TemporaryDirectory() as folder:
        build = sft_trainer if method == "sft" else grpo_trainer
        trainer = build(model, tokenizer, task, config=config, output_dir=Path(folder), callbacks=[NoSave()])
        model.train()
        with contextlib.redirect_stdout(io.StringIO()):  # the Trainer's own prints stay out of the JSON
            _, seconds, peak = timed(trainer.train, device)
    log = next((entry for entry in trainer.state.log_history if "loss" in entry), {})
    if method == "rl":
        rollouts = group * config.prompts_per_step
        length = float(log.get("completions/mean_length", config.rl.max_completion_length))
        tokens = rollouts * length
        extra = {"group": group, "rollouts": rollouts, "mean_completion_tokens": length, "vllm": use_vllm}
    else:
        tokens = sum(len(tokenizer(ex.clean).input_ids) + 2 for ex in task.examples[: config.prompts_per_step])
        extra = {"examples": config.prompts_per_step}
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds, "peak_memory_gib": peak,
            "loss": log.get("loss"), **extra}


def release(device: torch.device) -> None:
    """Free what the last section left (a deleted trainer's model and optimizer state) before the next is measured."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def guarded(result: dict, name: str, run, device: torch.device) -> None:
    """``result[name] = run()``; a failure becomes ``result["errors"][name]`` and the other sections still run."""
    try:
        result[name] = run()
    except Exception as err:  # noqa: BLE001 - every failure is reported in the JSON, never raised past it
        lines = str(err).strip().splitlines()
        result.setdefault("errors", {})[name] = f"{type(err).__name__}: {lines[0] if lines else ''}"[:500]
    finally:
        release(device)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on CPU: checks the script in seconds")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n", type=int, default=None, help="examples for head scoring (default 16; tiny 4)")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--group", type=int, default=None, help="GRPO group size (default 64; tiny 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    result: dict = {"shape": "tiny" if args.tiny else "qwen2.5-3b", "torch": torch.__version__}
    try:
        device = torch.device("cpu") if args.tiny else resolve_device(args.device)
    except Exception as err:  # noqa: BLE001 - no device: say so in the JSON
        result["errors"] = {"device": f"{type(err).__name__}: {err}"}
        print(json.dumps(result, indent=2))
        return result
    shape = result["shape"]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n, group = args.n or (4 if args.tiny else 16), args.group or (4 if args.tiny else 64)
    seq_len = 8 if args.tiny else args.seq_len
    use_vllm = device.type == "cuda" and importlib.util.find_spec("vllm") is not None
    result.update({"device": str(device), "dtype": str(dtype).removeprefix("torch.")})

    from circuitdrift.models.wordlevel import build_word_tokenizer

    words = [f"w{i}" for i in range(1000)]
    word_tokenizer = build_word_tokenizer(words)

    def heads():
        model = build_model(shape, len(word_tokenizer), dtype, device, args.seed)
        result.update({**{k: v for k, v in model.config.to_dict().items() if k in SHAPES["tiny"]},
                       "parameters": sum(p.numel() for p in model.parameters()),
                       "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                       else platform.processor()})
        try:
            return heads_section(model, word_tokenizer, synthetic_task(words, n, seq_len, args.seed), device, n)
        finally:
            del model

    guarded(result, "heads", heads, device)
    # training: the toy chat task (a word-level tokenizer with a chat template) on a fresh model of the shape
    chat_tokenizer = toy_tokenizer()
    task = toy_task(chat_tokenizer, n=16)
    for method in ("sft", "rl"):
        def train(method=method):
            # float32 weights, bf16 autocast on a GPU (the trainers' mixed precision), as the paper's runs train
            model = build_model(shape, len(chat_tokenizer), torch.float32, device, args.seed)
            model.config.eos_token_id = model.generation_config.eos_token_id = chat_tokenizer.eos_token_id
            model.config.pad_token_id = model.generation_config.pad_token_id = chat_tokenizer.pad_token_id
            try:
                return train_section(method, model, chat_tokenizer, task, device, group, use_vllm)
            finally:
                del model

        guarded(result, method, train, device)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

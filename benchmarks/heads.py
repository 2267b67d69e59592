"""Head-scoring speed on a random-init Qwen2 with grouped-query attention; prints JSON.

Times one plain forward, attribution patching, EAP-IG, batched exact patching
and the naive reference loop (one head, one example per forward pass, as the
paper authors' code does), and CMAP exact (batched and naive) against CMAP
attribution. Exact batched and naive numbers are compared (max abs difference),
and attribution against exact (Spearman).

    python benchmarks/heads.py                      # 8 layers, hidden 512, 16 heads, 4 KV heads
    python benchmarks/heads.py --shape qwen2.5-3b --device cuda --dtype bfloat16
    python benchmarks/heads.py --shape small --vocab 151643 --skip-naive    # a Qwen-sized vocabulary
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import resource
import time

import torch
from scipy.stats import spearmanr

from circuitdrift.circuits.crossmodel import cross_model_patch
from circuitdrift.circuits.metrics import answer_prob
from circuitdrift.circuits.patching import ablation_sources, all_heads, effect, naive_patched_values
from circuitdrift.circuits.scoring import head_scores, plain_forward_seconds
from circuitdrift.models.heads import HeadLayout, record_heads
from circuitdrift.models.load import resolve_device, resolve_dtype
from circuitdrift.models.tiny import tiny_model
from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.tasks.base import Example, Task, encode

SHAPES = {
    "default": dict(n_layers=8, hidden=512, n_heads=16, n_kv_heads=4),
    "small": dict(n_layers=4, hidden=128, n_heads=8, n_kv_heads=2),
    "qwen2.5-3b": dict(n_layers=36, hidden=2048, n_heads=16, n_kv_heads=2),
}


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


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="default")
    parser.add_argument("--n", type=int, default=16, help="examples")
    parser.add_argument("--seq-len", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--ig-steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive loops (large shapes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab", type=int, default=1000,
                        help="words in the vocabulary (151643: Qwen's size, where the LM head outweighs the layers)")
    args = parser.parse_args()

    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    words = [f"w{i}" for i in range(args.vocab)]
    tokenizer = build_word_tokenizer(words)
    shape = SHAPES[args.shape]
    model = tiny_model("qwen2", vocab_size=len(tokenizer), seed=args.seed, **shape).to(device, dtype)
    # a "fine-tuned" copy: every weight nudged, as a short fine-tuning run would
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(args.seed + 1)
        for p in tuned.parameters():
            p.add_(0.02 * p.abs().mean() * torch.randn(p.shape, generator=generator).to(device, dtype))
    task = synthetic_task(words, args.n, args.seq_len, args.seed)
    layout = HeadLayout.of(model)
    bs = args.batch_size

    plain_forward_seconds(model, tokenizer, task, bs)  # warm-up
    forward_s = min(plain_forward_seconds(model, tokenizer, task, bs) for _ in range(3))
    atp, atp_s = timed(lambda: head_scores(model, tokenizer, task, method="attribution", batch_size=bs))
    _, ig_s = timed(lambda: head_scores(model, tokenizer, task, method="eap-ig", batch_size=bs, ig_steps=args.ig_steps))
    exact, exact_s = timed(lambda: head_scores(model, tokenizer, task, method="exact", batch_size=bs))
    cmap_exact, cmap_exact_s = timed(lambda: cross_model_patch(model, tuned, tokenizer, task, method="exact",
                                                               batch_size=bs))
    cmap_atp, cmap_atp_s = timed(lambda: cross_model_patch(model, tuned, tokenizer, task, method="attribution",
                                                           batch_size=bs))
    result = {
        "shape": args.shape, **shape, "vocab_size": len(tokenizer), "head_dim": layout.head_dim,
        "n_examples": args.n, "seq_len": args.seq_len,
        "batch_size": bs, "ig_steps": args.ig_steps, "device": str(device), "dtype": args.dtype,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "seconds": {"forward": forward_s, "attribution": atp_s, "eap_ig": ig_s, "exact_batched": exact_s,
                    "cmap_exact_batched": cmap_exact_s, "cmap_attribution": cmap_atp_s},
        "ratios": {"attribution_over_forward": atp_s / forward_s, "eap_ig_over_forward": ig_s / forward_s,
                   "exact_batched_over_forward": exact_s / forward_s,
                   "cmap_exact_batched_over_attribution": cmap_exact_s / cmap_atp_s},
        "spearman": {
            "attribution_vs_exact": spearmanr(atp.scores.flatten(), exact.scores.flatten()).statistic,
            "cmap_attribution_vs_exact": spearmanr(cmap_atp.scores.flatten(), cmap_exact.scores.flatten()).statistic,
        },
    }
    if not args.skip_naive:
        encoded, pad = encode(task, tokenizer), tokenizer.pad_token_id
        heads = all_heads(layout)
        (clean, patched), naive_s = timed(lambda: naive_patched_values(
            model, encoded, pad, answer_prob, lambda b: ablation_sources(model, b, "corrupt", None), heads))
        naive = effect(clean, patched, relative=True).mean(-1).view(layout.shape)

        def donor_heads(batch):
            with torch.no_grad(), record_heads(tuned) as store:
                tuned(input_ids=batch.clean)
            return dict(store)

        (c_clean, c_patched), naive_cmap_s = timed(lambda: naive_patched_values(
            model, encoded, pad, answer_prob, donor_heads, heads))
        naive_cmap = effect(c_clean, c_patched, relative=False).mean(-1).view(layout.shape)
        result["seconds"].update({"naive_loop": naive_s, "cmap_naive_exact": naive_cmap_s})
        result["ratios"].update({"naive_over_exact_batched": naive_s / exact_s,
                                 "cmap_naive_exact_over_attribution": naive_cmap_s / cmap_atp_s,
                                 "cmap_naive_exact_over_exact_batched": naive_cmap_s / cmap_exact_s})
        result["max_abs_diff"] = {"exact_batched_vs_naive": (exact.scores - naive).abs().max().item(),
                                  "cmap_exact_batched_vs_naive": (cmap_exact.scores - naive_cmap).abs().max().item()}
    result["peak_memory_mb"] = peak_memory_mb(device)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

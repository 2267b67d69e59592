"""Head patching beside TransformerLens and nnsight: the same scores, the same model, one JSON.

Every library computes the same thing: exact activation patching of each
attention head's output (its slice of the input to ``o_proj``), counterfactual
into clean, one head at a time, scored by the answer's probability
``s_h = mean_i (P_patched,i - P_clean,i) / P_clean,i`` (docs/methods.md §3).

* ``circuitdrift_exact``: ``head_scores(method="exact")``, batched, the reference;
  ``circuitdrift_naive``: its own one-head-one-example loop (the loop the peers run);
  ``circuitdrift_attribution`` / ``circuitdrift_eap_ig``: the gradient estimates, against exact.
* ``transformer_lens``: ``TransformerBridge`` (transformer-lens 4), ``run_with_cache`` on the
  counterfactual, then ``run_with_hooks`` on ``blocks.{l}.attn.hook_z`` per head.
  ``transformer_lens_patching``: the same through TransformerLens's own
  ``patching.get_act_patch_attn_head_out_all_pos`` (one call per example);
  ``transformer_lens_attribution`` / ``transformer_lens_eap_ig``: its ``attribution_patch``
  against circuitdrift's attribution and EAP-IG scores.
* ``nnsight``: ``NNsight(model).trace``: the counterfactual's ``o_proj.input`` saved, then set
  per head in a clean trace.
* ``eap_ig_reference``: circuitdrift's EAP-IG head scores against :func:`plain_eap_ig`, a
  plain loop over the interpolation steps written here with PyTorch hooks only.

Each library's seconds per example cover scoring all heads; the peers and the naive loop
read logits and take the metric from them with the same ``answer_prob``. Cases: the
shipped organism, and a tiny random-init Qwen2 with grouped-query attention. A library
that cannot run a model is recorded with the reason. Prints JSON.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/peers.py [--n 16] [--ig-steps 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from circuitdrift.circuits.metrics import answer_prob
from circuitdrift.circuits.patching import ablation_sources, all_heads, effect, naive_patched_values
from circuitdrift.circuits.scoring import head_scores
from circuitdrift.models.heads import HeadLayout
from circuitdrift.tasks.base import Task, collate, encode


def one_example_batches(model: nn.Module, task: Task, tokenizer) -> list:
    """One unpadded TaskBatch per example: the peers run examples one at a time."""
    device = next(model.parameters()).device
    return [collate([example], tokenizer.pad_token_id).to(device) for example in encode(task, tokenizer)]


def relative_effects(clean: list[float], patched: Tensor) -> Tensor:
    """[L, H] mean over examples of (patched - clean) / clean, from patched [N, L, H]."""
    n, n_layers, n_heads = patched.shape
    per_head = patched.reshape(n, n_layers * n_heads).T  # [heads, N], as circuitdrift's ``effect`` takes it
    return effect(torch.tensor(clean, dtype=torch.float64), per_head, relative=True).mean(-1).view(n_layers, n_heads)


def _out_projections(model: nn.Module) -> list[nn.Module]:
    return [layer.self_attn.o_proj for layer in model.model.layers]  # Qwen2: both cases here


def _shape(model: nn.Module) -> tuple[int, int, int]:
    config = model.config
    heads = config.num_attention_heads
    return config.num_hidden_layers, heads, getattr(config, "head_dim", None) or config.hidden_size // heads


def _bridge(model: nn.Module, tokenizer):
    from transformer_lens.model_bridge import TransformerBridge

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)  # the bridge reads its config from a path
        return TransformerBridge.boot_transformers(folder, hf_model=copy.deepcopy(model),
                                                   device=next(model.parameters()).device,
                                                   tokenizer=copy.deepcopy(tokenizer))  # booting edits it


@torch.no_grad()
def transformer_lens_scores(bridge, model: nn.Module, tokenizer, task: Task) -> Tensor:
    """Exact head patching through TransformerBridge hooks on ``hook_z`` ([b, s, H, d])."""
    n_layers, n_heads, _ = _shape(model)
    clean_values, patched = [], torch.empty(len(task), n_layers, n_heads, dtype=torch.float64)
    for i, batch in enumerate(one_example_batches(model, task, tokenizer)):
        _, cache = bridge.run_with_cache(batch.corrupt, names_filter=lambda name: name.endswith("attn.hook_z"))
        clean_values.append(answer_prob(bridge(batch.clean), batch).item())
        for layer in range(n_layers):
            source = cache[f"blocks.{layer}.attn.hook_z"]
            for head in range(n_heads):

                def patch(z, hook, head=head, source=source):
                    z = z.clone()
                    z[:, :, head] = source[:, :, head]
                    return z

                logits = bridge.run_with_hooks(batch.clean, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", patch)])
                patched[i, layer, head] = answer_prob(logits, batch).item()
    return relative_effects(clean_values, patched)


@torch.no_grad()
def transformer_lens_patching_scores(bridge, model: nn.Module, tokenizer, task: Task) -> Tensor:
    """The same through TransformerLens's own ``patching.get_act_patch_attn_head_out_all_pos`` on the bridge.

    Its "corrupted tokens" are the run being patched (here the clean prompt) and its "clean cache" the
    source (here the counterfactual's), so the names swap but the computation is the one above.
    """
    from transformer_lens import patching

    n_layers, n_heads, _ = _shape(model)
    clean_values, patched = [], torch.empty(len(task), n_layers, n_heads, dtype=torch.float64)
    for i, batch in enumerate(one_example_batches(model, task, tokenizer)):
        _, cache = bridge.run_with_cache(batch.corrupt)
        clean_values.append(answer_prob(bridge(batch.clean), batch).item())
        patched[i] = patching.get_act_patch_attn_head_out_all_pos(
            bridge, batch.clean, cache, lambda logits, batch=batch: answer_prob(logits, batch).squeeze(0))
    return relative_effects(clean_values, patched)


@torch.no_grad()
def nnsight_scores(traced, model: nn.Module, tokenizer, task: Task) -> Tensor:
    """Exact head patching through nnsight (``traced``: ``NNsight(model)``): ``o_proj.input`` saved on the
    counterfactual, set per head."""
    n_layers, n_heads, head_dim = _shape(model)
    clean_values, patched = [], torch.empty(len(task), n_layers, n_heads, dtype=torch.float64)
    for i, batch in enumerate(one_example_batches(model, task, tokenizer)):
        with traced.trace(batch.clean):
            clean_logits = traced.output.logits.save()
        clean_values.append(answer_prob(clean_logits, batch).item())
        sources: list[Tensor] = []  # filled inside the trace: nnsight hands back only saved values, not new names
        with traced.trace(batch.corrupt):
            for layer in range(n_layers):
                sources.append(traced.model.layers[layer].self_attn.o_proj.input.save())
        for layer in range(n_layers):
            for head in range(n_heads):
                cut = slice(head * head_dim, (head + 1) * head_dim)
                with traced.trace(batch.clean):
                    proj = traced.model.layers[layer].self_attn.o_proj
                    x = proj.input.clone()
                    x[:, :, cut] = sources[layer][:, :, cut]
                    proj.input = x
                    logits = traced.output.logits.save()
                patched[i, layer, head] = answer_prob(logits, batch).item()
    return relative_effects(clean_values, patched)


def transformer_lens_attribution_scores(bridge, model: nn.Module, tokenizer, task: Task,
                                       ig_steps: int = 1) -> Tensor:
    """Attribution patching by TransformerLens's ``tools.analysis.attribution_patch`` on the bridge.

    It takes the gradient on its "corrupt" run and dots it with (clean - corrupt): passing the clean
    prompt as its corrupt one and the counterfactual as its clean one gives circuitdrift's noising form,
    (z_counterfactual - z_clean) . dP/dz at the clean run, summed over positions per head, then made
    relative to the clean P. ``ig_steps > 1`` asks for its EAP-IG.
    """
    from transformer_lens.tools.analysis import attribution_patch
    from transformer_lens.tools.analysis.attribution_patching import EdgeAttributionConfig

    n_layers, n_heads, _ = _shape(model)
    config = EdgeAttributionConfig(ig_steps=ig_steps)
    total = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    for batch in one_example_batches(model, task, tokenizer):
        with torch.no_grad():
            clean_p = answer_prob(bridge(batch.clean), batch).item()
        result = attribution_patch(bridge, batch.corrupt, batch.clean,
                                   lambda logits, batch=batch: answer_prob(logits, batch).squeeze(0), config)
        for node, value in result.node_scores.items():
            if node.kind == "attn_head_out":
                total[node.layer, node.head] += value / clean_p
    return total / len(task)


def plain_eap_ig(model: nn.Module, tokenizer, task: Task, steps: int) -> Tensor:
    """EAP-IG head scores by a plain loop (docs/methods.md §3), sharing no code path with circuitdrift's.

    Per example: the gradient of P(answer) with respect to each ``o_proj`` input is averaged over
    the inputs whose embeddings are ``corrupt + (k / steps) (clean - corrupt)``, k = 1..steps,
    and dotted with (counterfactual - clean) head outputs, relative to the clean P. [L, H] float64.
    """
    n_layers, n_heads, head_dim = _shape(model)
    projs = _out_projections(model)
    embed = model.get_input_embeddings()
    seen: list[Tensor] = []
    handles = [proj.register_forward_pre_hook(lambda _module, args: seen.append(args[0])) for proj in projs]
    total = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    try:
        for batch in one_example_batches(model, task, tokenizer):
            with torch.no_grad():
                seen.clear()
                model(input_ids=batch.corrupt, use_cache=False)
                corrupt_z = [z.double() for z in seen]
                seen.clear()
                clean_p = answer_prob(model(input_ids=batch.clean, use_cache=False).logits, batch).item()
                clean_z = [z.double() for z in seen]
                clean_e, corrupt_e = embed(batch.clean), embed(batch.corrupt)
            grads = [torch.zeros_like(z) for z in clean_z]
            for k in range(1, steps + 1):
                mixed = (corrupt_e + (k / steps) * (clean_e - corrupt_e)).requires_grad_(True)
                seen.clear()
                value = answer_prob(model(inputs_embeds=mixed, use_cache=False).logits, batch).sum()
                for layer, g in enumerate(torch.autograd.grad(value, list(seen))):
                    grads[layer] += g.double() / steps
            for layer in range(n_layers):
                delta = (corrupt_z[layer] - clean_z[layer]) * grads[layer]  # [1, T, H*d]
                total[layer] += delta.view(-1, n_heads, head_dim).sum(dim=(0, 2)) / clean_p
    finally:
        for handle in handles:
            handle.remove()
    return total / len(task)


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def _nnsight(model: nn.Module):
    from nnsight import NNsight

    return NNsight(copy.deepcopy(model))


def peer(setup, fn, model, tokenizer, task: Task, reference: Tensor, against: str = "exact") -> dict:
    """One library's scores against circuitdrift's (its ``against`` scores), or why it could not run.

    ``setup(model, tokenizer)`` wraps the model (booting a bridge, tracing); it is timed apart, once.
    """
    try:
        wrapped, setup_s = timed(lambda: setup(model, tokenizer))
        scores, seconds = timed(lambda: fn(wrapped, model, tokenizer, task))
    except Exception as error:  # a peer that cannot run this model is a result, recorded with its reason
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
    return {"seconds_per_example": seconds / len(task), "setup_seconds": setup_s,
            f"max_abs_diff_from_circuitdrift_{against}": (scores - reference).abs().max().item()}


def compare(name: str, model: nn.Module, tokenizer, task: Task, ig_steps: int) -> dict:
    layout = HeadLayout.of(model)
    n = len(task)
    exact, exact_s = timed(lambda: head_scores(model, tokenizer, task, method="exact", metric="prob").scores)
    atp, atp_s = timed(lambda: head_scores(model, tokenizer, task, method="attribution", metric="prob").scores)
    ig, ig_s = timed(lambda: head_scores(model, tokenizer, task, method="eap-ig", metric="prob",
                                         ig_steps=ig_steps).scores)
    encoded = encode(task, tokenizer)

    def naive() -> Tensor:
        clean, patched = naive_patched_values(model, encoded, tokenizer.pad_token_id, answer_prob,
                                              lambda b: ablation_sources(model, b, "corrupt", None), all_heads(layout))
        return effect(clean, patched, relative=True).mean(-1).view(layout.shape)

    naive_scores, naive_s = timed(naive)
    reference, reference_s = timed(lambda: plain_eap_ig(model, tokenizer, task, ig_steps))

    def estimate(scores: Tensor, seconds: float) -> dict:
        rho = spearmanr(scores.flatten().numpy(), exact.flatten().numpy()).statistic
        return {"seconds_per_example": seconds / n, "max_abs_diff_from_exact": (scores - exact).abs().max().item(),
                "spearman_with_exact": float(rho)}

    return {
        "model": name, "n_layers": layout.n_layers, "n_heads": layout.n_heads,
        "n_kv_heads": model.config.num_key_value_heads, "head_dim": layout.head_dim,
        "attn_implementation": model.config._attn_implementation, "n_examples": n,
        "max_abs_exact_score": exact.abs().max().item(),
        "circuitdrift_exact": {"seconds_per_example": exact_s / n},
        "circuitdrift_naive": {"seconds_per_example": naive_s / n,
                               "max_abs_diff_from_exact": (naive_scores - exact).abs().max().item()},
        "transformer_lens": peer(_bridge, transformer_lens_scores, model, tokenizer, task, exact),
        "transformer_lens_patching": peer(_bridge, transformer_lens_patching_scores, model, tokenizer, task, exact),
        "nnsight": peer(lambda m, _tokenizer: _nnsight(m), nnsight_scores, model, tokenizer, task, exact),
        "circuitdrift_attribution": estimate(atp, atp_s),
        "transformer_lens_attribution": peer(_bridge, transformer_lens_attribution_scores, model, tokenizer, task,
                                             atp, against="attribution"),
        "circuitdrift_eap_ig": estimate(ig, ig_s),
        "transformer_lens_eap_ig": peer(_bridge, partial(transformer_lens_attribution_scores, ig_steps=ig_steps),
                                        model, tokenizer, task, ig, against="eap_ig"),
        "eap_ig_reference": {"ig_steps": ig_steps, "plain_loop_seconds_per_example": reference_s / n,
                             "max_abs_score": ig.abs().max().item(),
                             "max_abs_diff_circuitdrift_vs_plain_loop": (ig - reference).abs().max().item()},
    }


def organism_case(n: int):
    from circuitdrift.models.load import load_model
    from circuitdrift.tasks.registry import resolve_task

    model, tokenizer = load_model("organism", device="cpu", attn_implementation="eager")
    return model, tokenizer, resolve_task("science-qa", split="test", tokenizer=tokenizer).subset(n)


def tiny_gqa_case(n: int, seed: int):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from heads import synthetic_task  # benchmarks/heads.py's random word task

    from circuitdrift.models.tiny import tiny_model
    from circuitdrift.models.wordlevel import build_word_tokenizer

    words = [f"w{i}" for i in range(200)]
    tokenizer = build_word_tokenizer(words)
    model = tiny_model("qwen2", vocab_size=len(tokenizer), seed=seed, n_layers=2, hidden=64, n_heads=8,
                       n_kv_heads=2, attn_implementation="eager")
    return model, tokenizer, synthetic_task(words, n, seq_len=12, seed=seed)


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="examples per case")
    parser.add_argument("--ig-steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cases = {}
    for name, build in (("organism", lambda: organism_case(args.n)),
                        ("tiny-qwen2-gqa", lambda: tiny_gqa_case(args.n, args.seed))):
        model, tokenizer, task = build()
        cases[name] = compare(name, model, tokenizer, task, args.ig_steps)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    print(json.dumps({
        "metric": "prob (relative change)", "ablation": "corrupt", "device": "cpu", "dtype": "float32",
        "threads": torch.get_num_threads(), "machine": platform.machine(), "uptime_after": uptime,
        "versions": {p: package_version(p) for p in ("torch", "transformers", "transformer-lens", "nnsight")},
        "cases": cases,
    }, indent=2))


if __name__ == "__main__":
    main()

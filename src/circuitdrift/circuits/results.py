"""The JSON results of the analysis commands, as plain functions over loaded models.

Each function is what one CLI subcommand computes (``heads``, ``cmap``, ``dcv``,
``faithfulness``); notebooks call them directly with models already in memory.
"""

from __future__ import annotations

from torch import nn

from circuitdrift.circuits.crossmodel import check_compatible, cross_model_patch
from circuitdrift.circuits.dcm import dcm_masks
from circuitdrift.circuits.discovery import CircuitSettings
from circuitdrift.circuits.faithfulness import faithfulness
from circuitdrift.circuits.scores import Head, HeadScores, head_name
from circuitdrift.circuits.scoring import plain_forward_seconds
from circuitdrift.circuits.vulnerability import check_tau, check_threshold, differential_vulnerability
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout
from circuitdrift.tasks.base import Task

PRUNE_KEYS = ("removal_order", "full_metric", "circuit_metric")


DEFAULT_TOP_K = 20  # the paper's circuit size, capped at the model's number of heads


def check_top_k(model: nn.Module, top_k: int | None) -> int:
    """The circuit size: ``top_k``, or min(20, number of heads) when not given (a default is never an error)."""
    total = HeadLayout.of(model).n_total
    if top_k is None:
        return min(DEFAULT_TOP_K, total)
    if not 1 <= top_k <= total:
        raise InputError(f"--top-k {top_k}: must be between 1 and the number of heads ({total})")
    return top_k


def circuit_settings(model: nn.Module, settings: CircuitSettings | None) -> CircuitSettings:
    """``settings`` with its circuit size checked against ``model`` (None: the defaults, min(20, heads) heads)."""
    if settings is None:
        return CircuitSettings(top_k=check_top_k(model, None))
    check_top_k(model, settings.top_k)
    return settings


def heads_result(model: nn.Module, tokenizer, task: Task, *, model_name: str,
                 settings: CircuitSettings | None = None) -> dict:
    """Scores of every head, the circuit, and timing against one plain forward pass."""
    s = circuit_settings(model, settings)
    scores, circuit = s.find(model, tokenizer, task)
    forward_s = plain_forward_seconds(model, tokenizer, task, s.batch_size)
    layout = HeadLayout.of(model)
    return {
        "model": model_name, "task": task.name, "method": s.method, "metric": s.metric, "ablation": s.ablation,
        "n_examples": len(task), "n_layers": layout.n_layers, "n_heads": layout.n_heads,
        "n_kv_heads": layout.n_kv_heads, "head_dim": layout.head_dim,
        **({"ig_steps": s.ig_steps} if s.method == "eap-ig" else {}),
        **({k: scores.meta[k] for k in PRUNE_KEYS} if s.method == "prune" else {}),
        "scores": scores.as_lists(),
        **({"masks": (-scores.scores).tolist()} if s.method == "dcm" else {}),  # DCM: scores = -m
        "circuit": scores.circuit_entries(circuit),
        "selection": {"threshold": s.threshold} if s.threshold is not None else {"top_k": s.top_k},
        "timing": {"total_s": scores.meta["timing"]["total_s"], "forward_s": forward_s},
    }


def dcm_result(model: nn.Module, tokenizer, task: Task, *, model_name: str, targets: list[str] | None = None,
               lam: float = 0.1, lr: float = 0.1, steps: int = 100, seed: int = 0) -> dict:
    """DCM masks in the circuit-file schema of ``heads`` (``scores`` = -m, most negative = most important)."""
    result = dcm_masks(model, tokenizer, task, targets=targets, lam=lam, lr=lr, steps=steps, seed=seed)
    ranking = HeadScores(-result.masks.scores, result.masks.meta)
    layout = HeadLayout.of(model)
    if not result.circuit:
        raise InputError(f"dcm: no head's mask ended above 0.5 (largest {float(result.masks.scores.max()):.3f}); "
                         "lower --lambda or check that the counterfactual changes the answer")
    return {
        "model": model_name, "task": task.name, "method": "dcm", "n_examples": len(task),
        "n_layers": layout.n_layers, "n_heads": layout.n_heads, "n_kv_heads": layout.n_kv_heads,
        "head_dim": layout.head_dim, **result.masks.meta,
        "scores": ranking.as_lists(), "masks": result.masks.as_lists(),
        "circuit": ranking.circuit_entries(result.circuit),
        "target_logprob": result.target_logprob, "loss": {"first": result.losses[0], "last": result.losses[-1]},
    }


def cmap_result(
    base: nn.Module, finetuned: nn.Module, tokenizer, task: Task, *, base_name: str, finetuned_name: str,
    method: str = "exact", metric: str = "prob", batch_size: int = 16, finetuned_tokenizer=None,
    reverse: bool = False,
) -> dict:
    delta = cross_model_patch(base, finetuned, tokenizer, task, method=method, metric=metric, batch_size=batch_size,
                              reverse=reverse, finetuned_tokenizer=finetuned_tokenizer)
    return {"base": base_name, "finetuned": finetuned_name, "task": task.name, "method": method, "metric": metric,
            "direction": delta.meta["direction"], "n_examples": len(task), "n_layers": delta.shape[0],
            "n_heads": delta.shape[1], "delta": delta.as_lists(), "timing": delta.meta["timing"]}


def dcv_result(
    base: nn.Module, sft: nn.Module, rl: nn.Module, tokenizer, task: Task, *, names: dict[str, str],
    settings: CircuitSettings | None = None, cmap_method: str = "exact", tau: float = 0.1,
    threshold: str = "relative", tokenizers: dict | None = None,
) -> dict:
    """CMAP of both fine-tuned models in both directions, V(h), vulnerable heads, D(h) and preservation.

    ``settings`` finds the three circuits; CMAP (``cmap_method``) uses its metric and batch size too.
    V and the vulnerable heads use the forward direction (the fine-tuned head into the base); the reverse
    direction (the base's head into the fine-tuned model) is reported beside it as ``reverse``. With the
    relative threshold, s_h is the base head's score from the base circuit's search.
    """
    check_tau(tau)  # before the CMAP passes, not after them
    check_threshold(threshold)
    s = circuit_settings(base, settings)
    method, metric, batch_size = cmap_method, s.metric, s.batch_size  # CMAP on the circuit search's metric
    tokenizers = tokenizers or {}
    check_compatible(base, sft, tokenizer, tokenizers.get("sft"))
    check_compatible(base, rl, tokenizer, tokenizers.get("rl"))
    delta_sft = cross_model_patch(base, sft, tokenizer, task, method=method, metric=metric, batch_size=batch_size)
    delta_rl = cross_model_patch(base, rl, tokenizer, task, method=method, metric=metric, batch_size=batch_size)
    reverse = {name: cross_model_patch(base, model, tokenizer, task, method=method, metric=metric,
                                       batch_size=batch_size, reverse=True).as_lists()
               for name, model in (("sft", sft), ("rl", rl))}
    found = {name: s.find(model, tokenizer, task) for name, model in (("base", base), ("sft", sft), ("rl", rl))}
    circuits = {name: heads for name, (_, heads) in found.items()}
    result = differential_vulnerability(delta_sft, delta_rl, tau, circuits["base"], circuits["sft"], circuits["rl"],
                                        threshold=threshold, base_scores=found["base"][0].scores)
    return {
        "base": names["base"], "sft": names["sft"], "rl": names["rl"], "task": task.name, "method": method,
        "circuit_method": s.method, "metric": metric, "ablation": s.ablation, "top_k": s.top_k,
        "n_examples": len(task), "n_layers": delta_sft.shape[0], "n_heads": delta_sft.shape[1],
        **result.to_json(circuits["base"]),
        "circuits": {name: [head_name(*head) for head in heads] for name, heads in circuits.items()},
        "reverse": {"direction": "base head into the fine-tuned model", "delta_sft": reverse["sft"],
                    "delta_rl": reverse["rl"]},
    }


def faithfulness_result(
    model: nn.Module, tokenizer, task: Task, circuit: list[Head], *, model_name: str, ablation: str = "mean",
    n_random: int = 10, seed: int = 0, batch_size: int = 32,
) -> dict:
    result = faithfulness(model, tokenizer, task, circuit, ablation=ablation, n_random=n_random, seed=seed,
                          batch_size=batch_size)
    return {"model": model_name, "task": task.name, "n_examples": len(task),
            "circuit": [head_name(*head) for head in circuit], "n_random": n_random, "seed": seed,
            **result.to_json()}

"""Circuit faithfulness F(C|M) / F(M) with a random-circuit baseline (docs/methods.md §3).

F is exact-match accuracy; F(C|M) is measured with every head outside C
ablated (zero, mean or counterfactual). A localisation claim needs a control:
the same ratio for random circuits of equal size (mean over ``n_random`` draws).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from circuitdrift.circuits.forward import model_device, scored_logits
from circuitdrift.circuits.metrics import exact_match
from circuitdrift.circuits.patching import ablation_sources, check_ablation, mean_head_outputs
from circuitdrift.circuits.scores import Head
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, head_hooks
from circuitdrift.tasks.base import Task, encode, iter_batches


@dataclass
class FaithfulnessResult:
    full_accuracy: float
    circuit_accuracy: float
    faithfulness: float
    random_faithfulness: float  # mean over the random draws
    random_faithfulness_all: list[float]
    circuit_size: int
    ablation: str

    def to_json(self) -> dict:
        return asdict(self)


@torch.no_grad()
def circuit_accuracies(
    model: nn.Module, tokenizer, task: Task, circuits: list[list[Head] | None], ablation: str = "mean",
    batch_size: int = 32,
) -> list[float]:
    """Exact-match accuracy with only each circuit's heads left intact (``None``: the full model)."""
    check_ablation(ablation)
    layout = HeadLayout.of(model)
    for circuit in circuits:
        for layer, head in circuit or []:
            if not (0 <= layer < layout.n_layers and 0 <= head < layout.n_heads):
                raise InputError(f"circuit head L{layer}.H{head} is outside the model "
                                 f"({layout.n_layers} layers x {layout.n_heads} heads)")
    device = model_device(model)
    encoded = encode(task, tokenizer)
    pad = tokenizer.pad_token_id
    means = mean_head_outputs(model, encoded, batch_size, pad) if ablation == "mean" else None
    hits = torch.zeros(len(circuits), dtype=torch.float64)
    for batch in iter_batches(encoded, batch_size, pad):
        batch = batch.to(device)
        sources = ablation_sources(model, batch, ablation, means)
        for i, circuit in enumerate(circuits):
            if circuit is None:
                scored = scored_logits(model, batch, ids=batch.clean)
            else:
                keep = torch.zeros(layout.shape, dtype=torch.bool, device=device)
                for layer, head in circuit:
                    keep[layer, head] = True

                def ablate(layer, z, keep=keep, sources=sources):
                    return torch.where(keep[layer][:, None], z, sources[layer].to(z.dtype))

                with head_hooks(model, ablate):
                    scored = scored_logits(model, batch, ids=batch.clean)
            hits[i] += exact_match(*scored).sum().item()
    return (hits / len(task)).tolist()


def random_circuits(layout: HeadLayout, size: int, n: int, seed: int) -> list[list[Head]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        picks = torch.randperm(layout.n_total, generator=generator)[:size].tolist()
        out.append([(i // layout.n_heads, i % layout.n_heads) for i in picks])
    return out


def faithfulness(
    model: nn.Module, tokenizer, task: Task, circuit: list[Head], *, ablation: str = "mean", n_random: int = 10,
    seed: int = 0, batch_size: int = 32,
) -> FaithfulnessResult:
    """F(C|M)/F(M) for ``circuit`` and the mean over ``n_random`` random circuits of the same size."""
    if not circuit:
        raise InputError("faithfulness: the circuit is empty")
    layout = HeadLayout.of(model)
    randoms = random_circuits(layout, len(set(circuit)), n_random, seed)
    accs = circuit_accuracies(model, tokenizer, task, [None, circuit, *randoms], ablation, batch_size)
    full, circ, rand = accs[0], accs[1], accs[2:]
    if full == 0:
        raise InputError(f"task '{task.name}': the model gets no example right, so faithfulness is undefined")
    ratios = [r / full for r in rand]
    return FaithfulnessResult(full, circ, circ / full, sum(ratios) / max(len(ratios), 1), ratios,
                              len(set(circuit)), ablation)

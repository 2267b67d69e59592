"""Desiderata-based component masking, DCM (docs/methods.md §3): a circuit found by learning head masks.

Patching asks what each head does alone; DCM asks which heads, together, carry
a behaviour. Every head h gets a mask m_h = sigmoid(l_h) in [0, 1]; on the clean
sequence each head's output is moved towards its output on the counterfactual
in proportion to its mask,

    z'_h = (1 - m_h) z_h(clean) + m_h z_h(counterfactual),

and the masks are trained (the model frozen) to make the patched run show the
desideratum while keeping the mask small:

    loss = -mean_i log p(target_i | patched clean run) + lambda * sum_h m_h

The default target is each example's counter-answer: the heads whose
counterfactual outputs alone flip the answer are the heads that carry the
information the counterfactual changed. A target per example can be given
instead. Adam at lr 0.1 for 100 full-batch iterations with lambda 0.1 are the
authors' settings; the circuit is every head with m > 0.5, strongest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from circuitdrift.circuits.forward import frozen_params, model_device, run_heads_only, scored_logits
from circuitdrift.circuits.scores import Head, HeadScores
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, head_hooks, record_heads
from circuitdrift.tasks.base import Task, collate, encode

DEFAULT_LAMBDA = 0.1
DEFAULT_LR = 0.1
DEFAULT_STEPS = 100
THRESHOLD = 0.5


@dataclass
class DCMResult:
    masks: HeadScores  # m_h per head, [L, H]
    circuit: list[Head]  # heads with m_h > 0.5, largest mask first
    losses: list[float]  # the loss at every iteration
    target_logprob: float  # mean log p(target) of the patched run with the final masks


def dcm_masks(model: nn.Module, tokenizer, task: Task, *, targets: list[str] | None = None,
              lam: float = DEFAULT_LAMBDA, lr: float = DEFAULT_LR, steps: int = DEFAULT_STEPS,
              seed: int = 0) -> DCMResult:
    """Learn one mask per head (see the module docstring); ``targets``: one token per example, else counter-answers."""
    if steps < 1 or lam < 0 or lr <= 0:
        raise InputError("dcm: steps must be >= 1, lambda >= 0 and the learning rate > 0")
    encoded = encode(task, tokenizer)
    batch = collate(encoded, tokenizer.pad_token_id).to(model_device(model))
    goal = _target_ids(task, tokenizer, targets).to(batch.clean.device)  # [B]
    layout = HeadLayout.of(model)
    with torch.no_grad(), record_heads(model) as corrupt:
        run_heads_only(model, batch.corrupt, batch)
    generator = torch.Generator().manual_seed(seed)
    logits = (0.01 * torch.randn(layout.shape, generator=generator)).to(batch.clean.device).requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    rows = torch.arange(batch.size, device=batch.clean.device)
    was_training = model.training
    model.eval()

    def patched_logprob() -> Tensor:
        masks = torch.sigmoid(logits)  # [L, H]

        def mix(layer: int, z: Tensor) -> Tensor:
            m = masks[layer].to(z.dtype)[None, None, :, None]  # [1, 1, H, 1]
            return (1 - m) * z + m * corrupt[layer]

        with head_hooks(model, mix):
            out, view = scored_logits(model, batch, ids=batch.clean)  # [B, A+1, V]
        return out[rows, view.last_prompt_pos].float().log_softmax(-1)[rows, goal]  # [B]

    losses = []
    try:
        with frozen_params(model):
            for _ in range(steps):
                optimizer.zero_grad()
                loss = -patched_logprob().mean() + lam * torch.sigmoid(logits).sum()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            with torch.no_grad():
                final = float(patched_logprob().mean())
    finally:
        model.train(was_training)
    masks = torch.sigmoid(logits.detach()).double().cpu()
    chosen = [(int(layer), int(head)) for layer, head in (masks > THRESHOLD).nonzero().tolist()]
    chosen.sort(key=lambda h: -float(masks[h]))
    meta = {"method": "dcm", "lambda": lam, "lr": lr, "steps": steps, "threshold": THRESHOLD,
            "desideratum": "targets" if targets is not None else "counter-answer"}
    return DCMResult(HeadScores(masks, meta), chosen, losses, final)


def _target_ids(task: Task, tokenizer, targets: list[str] | None) -> Tensor:
    """[B] the first token of each example's target: the given ones, or the counter-answers."""
    if targets is not None and len(targets) != len(task):
        raise InputError(f"dcm: {len(targets)} targets for {len(task)} examples")
    ids = []
    for i, ex in enumerate(task.examples):
        text = targets[i] if targets is not None else ex.counter_answer
        if not text:
            raise InputError(f"dcm: example {i} has no counter_answer; give a target per example")
        tokens = tokenizer(text, add_special_tokens=False).input_ids
        if not tokens:
            raise InputError(f"dcm: example {i}: target {text!r} has no tokens")
        ids.append(tokens[0])
    return torch.tensor(ids)

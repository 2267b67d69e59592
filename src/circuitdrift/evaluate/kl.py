"""Forward KL between the base and a fine-tuned policy on the new task (RL's Razor, docs/methods.md §7).

    KL = E_{x ~ D_new, y ~ pi_0(.|x)} [ log pi_0(y|x) - log pi(y|x) ]

Prompts x cycle through the task's examples; completions y are sampled from the
base model at temperature T with a length cap, and end at the first eos. Both
log probabilities are taken at the same temperature T (log_softmax(logits / T)),
summed over the tokens of y, on the very same padded batch: the samples come
from the distribution that is scored, so the mean is an unbiased estimate of
KL(pi_0,T || pi_T), the true forward KL at T = 1 (the default), and a model
against itself gives exactly 0. Top-p truncation is refused: a truncated
distribution has no density outside its nucleus, so its KL is not finite in
general, and sampling truncated while scoring untruncated (the authors' code:
T 0.6, top-p 0.85, scored at T 1) estimates neither distribution's KL. The
estimate is a Monte Carlo mean; ``stderr`` is its standard error. The exact
answer-position KL (evaluate/drift.py) needs no sampling and is the primary KL
wherever it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.errors import IncompatibleModelsError
from circuitdrift.evaluate.accuracy import prompt_ids
from circuitdrift.models.generate import Sampling, generate_batch, seeded
from circuitdrift.tasks.base import Task


@dataclass(frozen=True)
class ForwardKL:
    value: float
    stderr: float
    n_samples: int
    sampling: Sampling  # every sampling parameter the base's samples were drawn with

    def to_dict(self) -> dict:
        """{value, stderr, n_samples, do_sample, max_new_tokens, temperature, top_p, top_k, ...}."""
        return {"value": self.value, "stderr": self.stderr, "n_samples": self.n_samples, **self.sampling.to_dict()}


def kl_sampling(temperature: float, top_p: float, max_new_tokens: int) -> Sampling:
    """The KL samples' parameters: temperature and top-p as given, every other filter off."""
    return Sampling(do_sample=True, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)


@torch.no_grad()
def sequence_logprob(model: PreTrainedModel, prompt: Tensor, prompt_mask: Tensor, completion: Tensor,
                     completion_mask: Tensor, temperature: float = 1.0) -> Tensor:
    """[batch] sum of log pi_T(y_t | x, y_<t) over the completion tokens kept by ``completion_mask``."""
    ids = torch.cat([prompt, completion], dim=1)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    start = prompt.shape[1]
    predicting = (logits[:, start - 1 : -1].float() / temperature).log_softmax(dim=-1)  # [batch, new, vocab]
    token_logp = predicting.gather(-1, completion.unsqueeze(-1)).squeeze(-1)  # [batch, new]
    return (token_logp * completion_mask).sum(dim=1)


@dataclass(frozen=True)
class BaseSamples:
    """The base model's KL samples and their log-probabilities: the same for every checkpoint it is compared with.

    Drawn under a fixed seed without touching the caller's RNG, so computing them once per task and reusing
    them (evaluate/checkpoint.py's BaseSide) gives the very numbers a fresh draw would.
    """

    batches: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]  # (ids, mask, completion, keep, base log p)
    n_samples: int
    sampling: Sampling


def base_samples(base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task, *, n_samples: int,
                 sampling: Sampling, batch_size: int = 32, seed: int = 0) -> BaseSamples:
    """Sample completions of ``task``'s prompts from ``base`` and score them under ``base``, at ``sampling``'s T."""
    if sampling.top_p != 1.0:
        raise ValueError(f"forward KL: top-p {sampling.top_p:g} truncates the sampled distribution, whose KL is "
                         "then not finite in general; sample with top-p 1 (the temperature is applied to both models)")
    rows = prompt_ids(task, tokenizer)
    prompts = [rows[i % len(rows)] for i in range(n_samples)]
    device = next(base.parameters()).device
    mode = base.training
    base.eval()
    batches = []
    try:
        with seeded(seed, device):
            for start in range(0, n_samples, batch_size):
                ids, mask, completion, keep = generate_batch(base, tokenizer, prompts[start : start + batch_size],
                                                             sampling)
                batches.append((ids, mask, completion, keep,
                                sequence_logprob(base, ids, mask, completion, keep, sampling.temperature)))
    finally:
        base.train(mode)
    return BaseSamples(batches, n_samples, sampling)


def forward_kl(
    base: PreTrainedModel,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    *,
    n_samples: int = 200,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 128,
    batch_size: int = 32,
    seed: int = 0,
    samples: BaseSamples | None = None,
) -> ForwardKL:
    """Monte Carlo forward KL(pi_0,T || pi_T) on ``task``'s prompts, sampling from ``base`` and scoring both at T.

    ``samples``: the base's samples for these settings, drawn once (:func:`base_samples`) and reused.
    """
    if base.get_output_embeddings().weight.shape[0] != model.get_output_embeddings().weight.shape[0]:
        raise IncompatibleModelsError("forward KL: the base and the fine-tuned model have different vocabularies")
    if samples is None:
        samples = base_samples(base, tokenizer, task, n_samples=n_samples, batch_size=batch_size, seed=seed,
                               sampling=kl_sampling(temperature, top_p, max_new_tokens))
    mode = model.training
    model.eval()
    gaps: list[Tensor] = []
    try:
        for ids, mask, completion, keep, base_logp in samples.batches:
            model_logp = sequence_logprob(model, ids.to(model.device), mask.to(model.device),
                                          completion.to(model.device), keep.to(model.device),
                                          samples.sampling.temperature)
            gaps.append((base_logp - model_logp.to(base_logp.device)).double().cpu())
    finally:
        model.train(mode)
    values = torch.cat(gaps)
    n = samples.n_samples
    stderr = float(values.std(unbiased=True) / n**0.5) if n > 1 else float("nan")
    return ForwardKL(float(values.mean()), stderr, n, samples.sampling)

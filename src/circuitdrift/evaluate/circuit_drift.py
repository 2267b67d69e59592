"""Circuit-level measures of one checkpoint on one probe: CMAP, damage, the re-discovered circuit, preservation.

``circuitdrift run`` records them at every checkpoint beside the shared
measures of :mod:`circuitdrift.evaluate.checkpoint`; they take models, a task
and circuits only, so any command can call them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from circuitdrift.circuits.crossmodel import DonorHeads, ReceiverCache, cross_model_patch
from circuitdrift.circuits.discovery import CircuitSettings
from circuitdrift.circuits.scores import Head, HeadScores, head_name
from circuitdrift.circuits.vulnerability import circuit_preservation
from circuitdrift.tasks.base import Task


@dataclass(frozen=True)
class CircuitDrift:
    cmap: HeadScores  # dF_X(h) on ``metric``
    cmap_method: str
    damage: float  # mean dF_X(h) over the base circuit's heads (negative = degraded)
    circuit: list[Head]  # the checkpoint's circuit, re-discovered
    preservation: float  # overlap with the base model's circuit re-discovered the same way
    cmap_logprob: HeadScores | None = None  # dF_X(h) on the answer log-probability (with ``logprob``)
    damage_logprob: float | None = None
    cmap_reverse: HeadScores | None = None  # the other direction: the base's head h patched into X (``reverse``)
    damage_reverse: float | None = None  # its mean over the base circuit's heads

    def fields(self) -> dict:
        """The JSON fields of a probe's record (evaluate/record.py ProbeMeasurement)."""
        out = dict(cmap=self.cmap.as_lists(), cmap_method=self.cmap_method, damage=self.damage,
                   circuit=[head_name(*h) for h in self.circuit], preservation=self.preservation)
        if self.cmap_logprob is not None:
            out.update(cmap_logprob=self.cmap_logprob.as_lists(), damage_logprob=self.damage_logprob)
        if self.cmap_reverse is not None:
            out.update(cmap_reverse=self.cmap_reverse.as_lists(), damage_reverse=self.damage_reverse)
        return out


def circuit_drift(base, model, tokenizer, *, task: Task, base_circuit: list[Head], base_rediscovered: list[Head],
                  rediscovery: CircuitSettings, cmap_method: str, logprob: bool,
                  circuit: list[Head] | None = None, reverse: bool = False,
                  cache: ReceiverCache | None = None) -> CircuitDrift:
    """How ``model``'s circuit for ``task`` differs from the base model's.

    ``base_circuit``: the base circuit whose heads ``damage`` averages over;
    ``base_rediscovered``: the base's circuit found with ``rediscovery`` (what
    preservation compares with); ``circuit``: the checkpoint's, when already
    known (the base model itself), else found with ``rediscovery``; ``logprob``
    adds CMAP on the answer log-probability; ``reverse`` adds CMAP in the other
    direction (the base's head into ``model``, Prakash et al. 2024): positive
    where the base's version of a head would raise ``model``'s answer probability. ``cache``: the base's
    gradients on ``task`` kept across checkpoints (forward attribution CMAP; bit-identical results).

    ``model``'s clean head outputs on ``task`` are computed once (:class:`DonorHeads`): re-finding its circuit
    by attribution keeps them, and both CMAP metrics patch them into the base.
    """
    donor = DonorHeads(model)
    if circuit is None:
        circuit = rediscovery.find(model, tokenizer, task, keep_clean=donor.keep)[1]  # CMAP's batches: the same
    delta = cross_model_patch(base, model, tokenizer, task, method=cmap_method, metric=rediscovery.metric,
                              batch_size=rediscovery.batch_size, cache=cache, donor_heads=donor)
    damage = float(torch.stack([delta.scores[h] for h in base_circuit]).mean())
    out = CircuitDrift(cmap=delta, cmap_method=cmap_method, damage=damage, circuit=circuit,
                       preservation=circuit_preservation(base_rediscovered, circuit))
    if reverse:
        back = cross_model_patch(base, model, tokenizer, task, method=cmap_method, metric=rediscovery.metric,
                                 batch_size=rediscovery.batch_size, reverse=True)
        out = replace(out, cmap_reverse=back, damage_reverse=float(torch.stack([back.scores[h]
                                                                               for h in base_circuit]).mean()))
    if not logprob:
        return out
    delta_lp = delta if rediscovery.metric == "logprob" else cross_model_patch(
        base, model, tokenizer, task, method=cmap_method, metric="logprob", batch_size=rediscovery.batch_size,
        cache=cache, donor_heads=donor)
    damage_lp = float(torch.stack([delta_lp.scores[h] for h in base_circuit]).mean())
    return replace(out, cmap_logprob=delta_lp, damage_logprob=damage_lp)

"""Everything measured at one checkpoint of one run, the same way at every checkpoint.

Runs in worker processes (:mod:`circuitdrift.pipeline.parallel`): a worker
builds a :class:`BaseReference` once (the base model, its tasks and the
base-side numbers every checkpoint is compared with) and reuses it for every
checkpoint it measures.

Like with like (docs/report.md): circuits are re-discovered with the same
method at every checkpoint, step 0 included, and preservation is the overlap
with the base model's circuit found that way (1 at step 0 by construction);
CMAP uses ``analysis.cmap_method`` at every checkpoint, exact only at the steps
that ask for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from circuitdrift.circuits.crossmodel import cross_model_patch
from circuitdrift.circuits.metrics import answer_scores
from circuitdrift.circuits.scores import Head, head_name, parse_head
from circuitdrift.circuits.vulnerability import circuit_preservation
from circuitdrift.compare.schema import BaseCircuit, CheckpointMeasurement, ProbeMeasurement
from circuitdrift.evaluate.accuracy import greedy_completions, score_completions
from circuitdrift.evaluate.drift import answer_distribution, answer_kl, answer_logprobs, answer_spread, logprob_drift
from circuitdrift.evaluate.kl import forward_kl
from circuitdrift.pipeline.config import ExperimentConfig
from circuitdrift.pipeline.context import RunContext
from circuitdrift.pipeline.progress import Reporter


@dataclass
class BaseReference:
    """The base model and what every checkpoint's measurement is compared with, computed once per process."""

    config: ExperimentConfig
    circuits: dict[str, BaseCircuit]
    _ctx: object = None
    _cache: dict = field(default_factory=dict)

    @property
    def ctx(self):
        if self._ctx is None:
                    self._ctx = RunContext(self.config, None, Reporter(quiet=True))
        return self._ctx

    @property
    def base(self):
        return self.ctx.base

    def task(self, spec: str, n: int | None):
        return self.ctx.task(spec, n)

    def _once(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def probe_logprobs(self, label: str, spec: str) -> torch.Tensor:
        """[probe_n] the base model's answer log-probabilities on the probe's accuracy examples."""
        cfg = self.config.eval
        return self._once(("logprobs", label), lambda: answer_logprobs(
            self.base[0], self.base[1], self.task(spec, cfg.probe_n), cfg.batch_size))

    def answer_distribution(self, task) -> torch.Tensor:
        """[n, V] the base model's answer-position log-probabilities on the target task (for the exact KL)."""
        return self._once(("answer-distribution", task.name, len(task)), lambda: answer_distribution(
            self.base[0], self.base[1], task, self.config.eval.batch_size))

    def rediscovered(self, label: str, spec: str) -> list[Head]:
        """The base model's circuit found with the re-discovery method: what preservation compares with."""
        return self._once(("circuit", label), lambda: rediscover(self.config, *self.base,
                                                                 self.task(spec, self.config.analysis.n_examples)))

    def mean_logprob(self, label: str, spec: str) -> float:
        """The base model's mean answer log-probability on the CMAP examples (scales the log-prob threshold)."""
        a = self.config.analysis
        return self._once(("mean-logprob", label), lambda: float(answer_logprobs(
            self.base[0], self.base[1], self.task(spec, a.n_examples), a.batch_size).mean()))


def rediscover(config: ExperimentConfig, model, tokenizer, task) -> list[Head]:
    a = config.analysis
    _, circuit = a.circuit(a.rediscovery_method).find(model, tokenizer, task)
    return circuit


def measure_checkpoint(ref: BaseReference, method: str, seed: int, learning_rate: float | None, step: int,
                       folder: Path | None, exact: bool) -> CheckpointMeasurement:
    """One checkpoint (``folder`` None: the base model itself, step 0)."""
    config = ref.config
    cfg = config.eval
    base, tokenizer = ref.base
    model = base if folder is None else ref.ctx.load(folder)[0]
    target = ref.task(config.target_task, cfg.target_n)
    completions = greedy_completions(model, tokenizer, target, cfg.max_new_tokens, cfg.batch_size)
    accuracy = score_completions(target, completions)
    spread = answer_spread([target.parse(text) for text in completions])
    if step == 0:
        kl, kl_exact = 0.0, 0.0  # the step-0 checkpoint is the base model: KL(pi_0 || pi_0) = 0
    else:
        kl = forward_kl(base, model, tokenizer, target, cfg.kl_samples, cfg.kl_temperature, cfg.kl_top_p,
                        cfg.kl_max_new_tokens, cfg.batch_size, seed=0).value
        kl_exact = answer_kl(base, model, tokenizer, target, cfg.batch_size,
                             ref.answer_distribution(target)).value if cfg.exact_kl else None
    probes = {}
    for label, spec in ref.ctx.probe_tasks().items():
        probes[label] = _measure_probe(ref, model, tokenizer, label, spec, exact)
    return CheckpointMeasurement(
        method=method, seed=seed, learning_rate=learning_rate, step=step, target_accuracy=accuracy.accuracy,
        target_n=accuracy.n, target_unparsable=accuracy.unparsable, kl=kl,
        kl_samples=0 if step == 0 else cfg.kl_samples, kl_exact=kl_exact, answer_entropy=spread.entropy_bits,
        distinct_answers=spread.distinct, top_answer_share=spread.top_share, collapsed=spread.collapsed,
        probes=probes,
    )


def _measure_probe(ref: BaseReference, model, tokenizer, label: str, spec: str, exact: bool) -> ProbeMeasurement:
    config = ref.config
    cfg, a = config.eval, config.analysis
    base = ref.base[0]
    probe_task = ref.task(spec, a.n_examples)
    accuracy_task = ref.task(spec, cfg.probe_n)
    hits, logprobs = answer_scores(model, tokenizer, accuracy_task, cfg.batch_size)  # one teacher-forced pass
    accuracy = float(hits.double().mean())
    cmap_method = "exact" if exact else a.cmap_method
    delta = cross_model_patch(base, model, tokenizer, probe_task, method=cmap_method, metric=a.metric,
                              batch_size=a.batch_size)
    base_heads = [parse_head(h) for h in ref.circuits[label].circuit]
    damage = float(torch.stack([delta.scores[h] for h in base_heads]).mean())
    circuit = ref.rediscovered(label, spec) if model is base else rediscover(config, model, tokenizer, probe_task)
    out = dict(accuracy=accuracy, cmap=delta.as_lists(), cmap_method=cmap_method, damage=damage,
               circuit=[head_name(*h) for h in circuit],
               preservation=circuit_preservation(ref.rediscovered(label, spec), circuit))
    if cfg.logprob_drift:
        drift = logprob_drift(ref.probe_logprobs(label, spec), logprobs)
        out.update(logprob_drift=drift.mean, logprob_drift_se=drift.stderr)
        if a.metric != "logprob":
            delta_lp = cross_model_patch(base, model, tokenizer, probe_task, method=cmap_method, metric="logprob",
                                         batch_size=a.batch_size)
        else:
            delta_lp = delta
        values = torch.stack([delta_lp.scores[h] for h in base_heads])
        out.update(cmap_logprob=delta_lp.as_lists(), damage_logprob=float(values.mean()),
                   base_logprob=ref.mean_logprob(label, spec))  # tau enters in the comparison, not here
    return ProbeMeasurement(**out)


# ---- worker entry points (module level, so spawn workers can import them) ---------------------------

_REFERENCES: dict[str, BaseReference] = {}


def measure_job(job: tuple) -> dict:
    """Worker: ``(config, circuits, key, method, seed, lr, step, folder or None, exact)`` -> the record as a dict."""
    config, circuits, ref_key, method, seed, lr, step, folder, exact = job
    ref = _REFERENCES.get(ref_key)
    if ref is None:
        ref = _REFERENCES[ref_key] = BaseReference(config, circuits)
    record = measure_checkpoint(ref, method, seed, lr, step, None if folder is None else Path(folder), exact)
    return record.model_dump()

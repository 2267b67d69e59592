"""Everything measured at one checkpoint of one run, the same way at every checkpoint.

Runs in worker processes (:mod:`circuitdrift.engine.pool`): a worker
builds a :class:`BaseReference` once (the base model, its tasks and the
base-side numbers every checkpoint is compared with) and reuses it for every
checkpoint it measures.

The measures ``circuitdrift eval`` shares (target and probe accuracy, answer
spread, KL, log-probability drift) come from
:func:`circuitdrift.evaluate.checkpoint.checkpoint_measures` with the config's
``eval:`` section (:class:`~circuitdrift.evaluate.settings.MeasureSettings`);
the circuit measures from :func:`circuitdrift.evaluate.circuit_drift.circuit_drift`.
Both hand over their fields under the record's own names (``fields()``,
evaluate/record.py), so the record is built here without renaming.

Like with like (docs/report.md): circuits are re-discovered with the same
method at every checkpoint, step 0 included, and preservation is the overlap
with the base model's circuit found that way (1 at step 0 by construction);
CMAP uses ``analysis.cmap_method`` at every checkpoint, exact only at the steps
that ask for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from circuitdrift.circuits.crossmodel import ReceiverCache
from circuitdrift.circuits.metrics import answer_scores
from circuitdrift.circuits.scores import Head, parse_head
from circuitdrift.compare.schema import BaseCircuit
from circuitdrift.engine.progress import Reporter
from circuitdrift.evaluate.accuracy import Accuracy, greedy_with_first_logprobs, score_completions
from circuitdrift.evaluate.checkpoint import BaseSide, ProbeScore, checkpoint_measures
from circuitdrift.evaluate.circuit_drift import circuit_drift
from circuitdrift.evaluate.drift import answer_logprobs, answer_probability
from circuitdrift.evaluate.lmeval import lm_eval_scores
from circuitdrift.evaluate.record import CheckpointMeasurement, ProbeMeasurement
from circuitdrift.pipeline.config import ExperimentConfig
from circuitdrift.pipeline.context import RunContext
from circuitdrift.pipeline.jobs import MeasureJob


@dataclass
class BaseReference:
    """The base model and what every checkpoint's measurement is compared with, computed once per process."""

    config: ExperimentConfig
    circuits: dict[str, BaseCircuit]
    _cache: dict = field(default_factory=dict)

    @cached_property
    def ctx(self) -> RunContext:
        return RunContext(self.config, None, Reporter(quiet=True))

    @property
    def base(self):
        return self.ctx.base

    @cached_property
    def side(self) -> BaseSide:
        """The base side of the shared measures (evaluate/checkpoint.py)."""
        return BaseSide(model=self.base[0], tokenizer=self.base[1], settings=self.config.eval)

    def task(self, spec: str, n: int | None):
        return self.ctx.task(spec, n)

    def _once(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def rediscovered(self, label: str, spec: str) -> list[Head]:
        """The base model's circuit found with the re-discovery method: what preservation compares with."""
        a = self.config.analysis
        return self._once(("circuit", label), lambda: a.circuit(a.rediscovery_method).find(
            *self.base, self.task(spec, a.n_examples))[1])

    def receiver_cache(self, label: str) -> ReceiverCache:
        """The base model's CMAP gradients on one probe's examples, reused by every checkpoint this worker measures."""
        return self._once(("receiver", label), lambda: ReceiverCache(self.base[0]))

    def mean_logprob(self, label: str, spec: str) -> float:
        """The base model's mean answer log-probability on the CMAP examples (scales the log-prob threshold)."""
        a = self.config.analysis
        return self._once(("mean-logprob", label), lambda: float(answer_logprobs(
            self.base[0], self.base[1], self.task(spec, a.n_examples), a.batch_size).mean()))


def measure_checkpoint(ref: BaseReference, *, method: str, seed: int, learning_rate: float | None, step: int,
                       folder: Path | None, exact: bool) -> CheckpointMeasurement:
    """One checkpoint (``folder`` None: the base model itself, step 0): the shared measures, then circuits."""
    config = ref.config
    cfg = config.eval
    base, tokenizer = ref.base
    model = base if folder is None else ref.ctx.load(folder)[0]
    labels = ref.ctx.probe_tasks()
    shared = checkpoint_measures(model, tokenizer, target=ref.task(config.target_task, cfg.target_n),
                                 probes={label: ref.task(spec, cfg.probe_n) for label, spec in labels.items()},
                                 settings=cfg, base=ref.side, seed=0)
    selection, selection_split, selection_prob = _selection_accuracy(ref, model, tokenizer, shared)
    reverse = folder is not None and step == ref.ctx.final_step()  # CMAP both ways at the end of every run
    probes = {label: _measure_probe(ref, model, tokenizer, label=label, spec=spec, score=shared.probes[label],
                                    exact=exact, reverse=reverse)
              for label, spec in labels.items()}
    bench = cfg.lm_eval
    benchmarks = {} if bench is None else lm_eval_scores(model, tokenizer, bench.tasks, limit=bench.limit,
                                                           include_path=bench.include_path, batch_size=cfg.batch_size,
                                                           apply_chat_template=bench.apply_chat_template)
    return CheckpointMeasurement(
        method=method, seed=seed, learning_rate=learning_rate, step=step, **shared.fields(),
        selection_accuracy=selection.accuracy, selection_n=selection.n, selection_split=selection_split,
        selection_prob=selection_prob, probes=probes, benchmarks=benchmarks,
    )


def _selection_accuracy(ref: BaseReference, model, tokenizer, shared) -> tuple[Accuracy, str, float]:
    """Target accuracy on the selection split (learning rates and levels are chosen on it, not on the test), the
    split it really came from, and the mean probability of the correct answer there (the alternative matched
    axis: it moves before greedy accuracy does), read from the greedy pass's first step where every answer is
    one token, else teacher-forced."""
    cfg = ref.config.eval
    test_task = ref.task(ref.config.target_task, cfg.target_n)
    task = ref.ctx.task(ref.config.target_task, cfg.target_n, split=cfg.selection_split)
    if cfg.selection_split == cfg.split or task.examples == test_task.examples:
        # the same split, or a task file without splits: the "validation" questions are the test's own
        return shared.target, cfg.split, _answer_prob(model, tokenizer, test_task, shared.first_logprobs,
                                                      cfg.batch_size)
    texts, first = greedy_with_first_logprobs(model, tokenizer, task, max_new_tokens=cfg.max_new_tokens,
                                              batch_size=cfg.batch_size)
    return (score_completions(task, texts), cfg.selection_split,
            _answer_prob(model, tokenizer, task, first, cfg.batch_size))


def _answer_prob(model, tokenizer, task, first_logprobs, batch_size: int) -> float:
    """Mean over examples of P(correct answer | prompt) (per token, geometric, for longer answers)."""
    prob = answer_probability(first_logprobs, task, tokenizer)
    if prob is None:
        prob = float(answer_scores(model, tokenizer, task, batch_size)[1].exp().mean())
    return prob


def _measure_probe(ref: BaseReference, model, tokenizer, *, label: str, spec: str, score: ProbeScore,
                   exact: bool, reverse: bool = False) -> ProbeMeasurement:
    a = ref.config.analysis
    base = ref.base[0]
    drift = circuit_drift(
        base, model, tokenizer, task=ref.task(spec, a.n_examples),
        base_circuit=[parse_head(h) for h in ref.circuits[label].circuit],
        base_rediscovered=ref.rediscovered(label, spec), rediscovery=a.circuit(a.rediscovery_method),
        cmap_method="exact" if exact else a.cmap_method, logprob=score.drift is not None,
        circuit=ref.rediscovered(label, spec) if model is base else None, reverse=reverse,
        cache=ref.receiver_cache(label),
    )
    out = {**score.fields(), **drift.fields()}
    if score.drift is not None:
        out["base_logprob"] = ref.mean_logprob(label, spec)  # tau enters in the comparison, not here
    return ProbeMeasurement(**out)


# ---- worker entry points (module level, so spawn workers can import them) ---------------------------

_REFERENCES: dict[str, BaseReference] = {}


def measure_job(job: MeasureJob) -> dict:
    """Worker: one checkpoint's measurement -> the record as a dict."""
    ref = _REFERENCES.get(job.reference_key)
    if ref is None:
        ref = _REFERENCES[job.reference_key] = BaseReference(job.config, job.circuits)
    record = measure_checkpoint(ref, method=job.method, seed=job.seed, learning_rate=job.learning_rate, step=job.step,
                                folder=None if job.folder is None else Path(job.folder), exact=job.exact)
    return record.model_dump()

"""The measures every checkpoint gets, by ``circuitdrift eval`` and by ``circuitdrift run`` alike.

:func:`checkpoint_measures` owns them: target accuracy and the spread of the
target answers (greedy generation, graded by the task), probe accuracy and,
against a base model, the probes' answer log-probability drift, the sampled
forward KL and the exact answer-position KL. The circuit-level measures (CMAP,
the re-discovered circuit, preservation, damage) are in
:mod:`circuitdrift.evaluate.circuit_drift`.

Probe accuracy is teacher-forced exact match of the answer tokens
(:func:`~circuitdrift.circuits.metrics.answer_scores`): a probe's answer is
one token (or one word), so scoring the gold answer under teacher forcing is
exact, needs no generation length or answer parser, and the same forward pass
gives the log-probability drift. Target accuracy is graded on generated text,
because a target task may have several right answers or a letter to parse.

:class:`BaseSide` holds the base model and caches what every checkpoint is
compared with, so a process measuring many checkpoints computes it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from circuitdrift.circuits.metrics import answer_scores
from circuitdrift.evaluate.accuracy import Accuracy, greedy_with_first_logprobs, score_completions
from circuitdrift.evaluate.drift import AnswerSpread, Drift, answer_spread, kl_between, logprob_drift
from circuitdrift.evaluate.kl import BaseSamples, ForwardKL, base_samples, forward_kl, kl_sampling
from circuitdrift.evaluate.settings import MeasureSettings
from circuitdrift.tasks.base import Task


@dataclass
class BaseSide:
    """The base model and its numbers every checkpoint is compared with (cached per task)."""

    model: object
    tokenizer: object
    settings: MeasureSettings
    _cache: dict = field(default_factory=dict)

    def _once(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def probe_scores(self, label: str, task: Task) -> tuple[Tensor, Tensor]:
        """([n] exact match, [n] answer log-probability) of the base model on a probe's accuracy examples."""
        return self._once(("probe", label, task.name, len(task)), lambda: answer_scores(
            self.model, self.tokenizer, task, self.settings.batch_size))

    def kl_samples(self, task: Task, seed: int) -> BaseSamples:
        """The base's KL samples on the target task and their base log-probabilities, drawn once per seed."""
        s = self.settings
        return self._once(("kl-samples", task.name, len(task), seed), lambda: base_samples(
            self.model, self.tokenizer, task, n_samples=s.kl_samples, batch_size=s.batch_size, seed=seed,
            sampling=kl_sampling(s.kl_temperature, s.kl_top_p, s.kl_max_new_tokens)))

    def answer_distribution(self, task: Task) -> Tensor:
        """[n, V] the base model's next-token log-probabilities on the target task's prompts (for the exact KL),
        read from its greedy generation's first step as the checkpoints' are."""
        s = self.settings
        return self._once(("answer-distribution", task.name, len(task)), lambda: greedy_with_first_logprobs(
            self.model, self.tokenizer, task, max_new_tokens=s.max_new_tokens, batch_size=s.batch_size)[1])


@dataclass(frozen=True)
class ProbeScore:
    accuracy: float  # teacher-forced exact match of the answer tokens
    logprobs: Tensor  # [n] mean log-probability of each gold answer (nats)
    base_accuracy: float | None = None  # the base model's accuracy (None without a base)
    drift: Drift | None = None  # answer log-probability drift from the base (settings.logprob_drift)
    forgetting_se: float | None = None  # standard error over questions of (base hit - hit): paired, same questions

    @property
    def n(self) -> int:
        return int(self.logprobs.numel())

    def fields(self) -> dict:
        """Its fields of a probe's record (evaluate/record.py ProbeMeasurement), under the record's names."""
        out = dict(accuracy=self.accuracy, n=self.n, forgetting_se=self.forgetting_se)
        if self.drift is not None:
            out.update(logprob_drift=self.drift.mean, logprob_drift_se=self.drift.stderr)
        return out


@dataclass(frozen=True)
class CheckpointMeasures:
    target: Accuracy
    spread: AnswerSpread
    probes: dict[str, ProbeScore]
    kl: ForwardKL | None = None  # sampled forward KL(base || model); None without a base
    kl_exact: float | None = None  # exact KL of the answer-position distributions (settings.exact_kl)
    first_logprobs: Tensor | None = None  # [n, V] the target prompts' next-token log-probabilities (not recorded)

    def fields(self) -> dict:
        """Its fields of a checkpoint's record (evaluate/record.py CheckpointMeasurement), under the record's names;
        measured against a base (the record has a KL)."""
        return dict(target_accuracy=self.target.accuracy, target_n=self.target.n,
                    target_unparsable=self.target.unparsable, kl=self.kl.value, kl_samples=self.kl.n_samples,
                    kl_exact=self.kl_exact, answer_entropy=self.spread.entropy_bits,
                    distinct_answers=self.spread.distinct, top_answer_share=self.spread.top_share,
                    collapsed=self.spread.collapsed)


def checkpoint_measures(model, tokenizer, *, target: Task, probes: dict[str, Task], settings: MeasureSettings,
                       base: BaseSide | None = None, seed: int = 0) -> CheckpointMeasures:
    """The shared measures of ``model``; KL, drift and base accuracies need ``base``.

    ``model is base.model`` (step 0 of a run) gets KL 0 from zero samples and exact KL 0: KL(pi_0 || pi_0) = 0.
    ``seed`` seeds the KL samples.
    """
    # one pass: the greedy answers and, from its first step, the answer-position distribution of the exact KL
    completions, first = greedy_with_first_logprobs(model, tokenizer, target, max_new_tokens=settings.max_new_tokens,
                                                    batch_size=settings.batch_size)
    accuracy = score_completions(target, completions)
    spread = answer_spread([target.parse_example(text, ex) for text, ex in zip(completions, target.examples,
                                                                               strict=True)])
    scores = {label: _probe_score(model, tokenizer, label=label, task=task, settings=settings, base=base)
              for label, task in probes.items()}
    if base is None:
        return CheckpointMeasures(target=accuracy, spread=spread, probes=scores, first_logprobs=first)
    s = settings
    if model is base.model:
        kl = ForwardKL(0.0, 0.0, 0, kl_sampling(s.kl_temperature, s.kl_top_p, s.kl_max_new_tokens))
        kl_exact = 0.0
    else:
        kl = forward_kl(base.model, model, tokenizer, target, n_samples=s.kl_samples, temperature=s.kl_temperature,
                        top_p=s.kl_top_p, max_new_tokens=s.kl_max_new_tokens, batch_size=s.batch_size, seed=seed,
                        samples=base.kl_samples(target, seed))
        kl_exact = kl_between(base.answer_distribution(target), first).value if s.exact_kl else None
    return CheckpointMeasures(target=accuracy, spread=spread, probes=scores, kl=kl, kl_exact=kl_exact,
                              first_logprobs=first)


def _probe_score(model, tokenizer, *, label: str, task: Task, settings: MeasureSettings,
                 base: BaseSide | None) -> ProbeScore:
    hits, logprobs = answer_scores(model, tokenizer, task, settings.batch_size)  # one teacher-forced pass
    accuracy = float(hits.double().mean())
    if base is None:
        return ProbeScore(accuracy=accuracy, logprobs=logprobs)
    base_hits, base_logprobs = base.probe_scores(label, task)
    drift = logprob_drift(base_logprobs, logprobs) if settings.logprob_drift else None
    return ProbeScore(accuracy=accuracy, logprobs=logprobs, base_accuracy=float(base_hits.double().mean()),
                      drift=drift, forgetting_se=paired_se(base_hits.double() - hits.double()))


def paired_se(differences: Tensor) -> float | None:
    """Standard error of the mean of per-question differences (None with fewer than two questions)."""
    n = differences.numel()
    if n < 2:
        return None
    return float(differences.std(unbiased=True) / n**0.5)

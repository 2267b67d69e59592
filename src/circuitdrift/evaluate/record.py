"""One checkpoint's measurement as results.json holds it: the record evaluate builds and compare and report read.

:func:`~circuitdrift.evaluate.checkpoint.checkpoint_measures` and
:func:`~circuitdrift.evaluate.circuit_drift.circuit_drift` give their fields under these names
(``fields()``), so nothing renames them on the way to the report; compare/schema.py re-exports the
two records beside the other files' records. Field order is the JSON key order: changing it changes
results.json's bytes. (``circuitdrift eval`` writes the same measures in its own nested JSON, its
documented output; see evaluate/measure.py.)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    """A typed file record: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class ProbeMeasurement(Record):
    """One probe at one checkpoint."""

    accuracy: float  # teacher-forced exact match of the answer tokens (evaluate/checkpoint.py)
    n: int | None = None  # questions the accuracy is over (its resolution is 1 / n)
    forgetting_se: float | None = None  # SE over questions of (base hit - hit), paired on the same questions
    cmap: list[list[float]]  # dF_X(h) for every head, [n_layers][n_heads], on analysis.metric
    cmap_method: str  # exact | attribution
    damage: float  # mean dF_X(h) over the heads of the base circuit (negative = degraded)
    circuit: list[str]  # top-k circuit re-discovered in this checkpoint (rediscovery_method at every step)
    preservation: float  # |C_0 & C_X| / k, C_0 the base model's circuit re-discovered the same way (step 0: 1)
    logprob_drift: float | None = None  # mean over examples of log P_X(answer) - log P_base(answer) (nats)
    logprob_drift_se: float | None = None  # its standard error over examples
    cmap_logprob: list[list[float]] | None = None  # dF_X(h) on the answer log-probability metric
    damage_logprob: float | None = None  # mean of cmap_logprob over the base circuit's heads (nats)
    base_logprob: float | None = None  # the base's mean answer log-prob on the CMAP examples (scales the threshold)
    cmap_reverse: list[list[float]] | None = None  # CMAP the other way (base head into X), final checkpoint only
    damage_reverse: float | None = None  # mean of cmap_reverse over the base circuit's heads


class CheckpointMeasurement(Record):
    """Everything measured at one checkpoint of one (method, seed) run (stage: measure)."""

    method: str  # sft | rl | sft-preserve
    seed: int
    learning_rate: float | None = None  # the run's peak learning rate (None: the base model's record)
    step: int  # optimizer steps taken; 0 = the base model
    target_accuracy: float  # greedy, first letter parsed; unparsable counts as wrong
    target_n: int
    target_unparsable: int
    selection_accuracy: float | None = None  # greedy target accuracy on the selection split (eval.selection_split)
    selection_n: int | None = None
    selection_split: str | None = None  # None: a record from before selection had its own split
    selection_prob: float | None = None  # mean teacher-forced probability of the correct answer on that split
    kl: float  # forward KL from the base on the target task's prompts, sampled from the base (nats/sequence)
    kl_samples: int
    kl_exact: float | None = None  # exact KL(pi_0 || pi) of the answer-position distribution (nats, mean)
    answer_entropy: float | None = None  # entropy (bits) of the greedy target answers over the test prompts
    distinct_answers: int | None = None  # distinct greedy target answers
    top_answer_share: float | None = None  # share of prompts given the most common answer
    collapsed: bool | None = None  # one answer, or entropy below evaluate.drift.COLLAPSE_ENTROPY_BITS
    probes: dict[str, ProbeMeasurement]
    benchmarks: dict[str, float] = Field(default_factory=dict)  # LM-Eval task -> score (eval.lm_eval; else empty)

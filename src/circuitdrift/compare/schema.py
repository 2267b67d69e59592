"""The files the pipeline stages hand to each other, as typed records, down to results.json.

Every stage writes JSON that validates against one of these models; the
comparison stage and the report read only these files, never models. They
live in compare/ because the report reads them and must not depend on the
pipeline that writes them; the checkpoint record (CheckpointMeasurement,
ProbeMeasurement) is evaluate's own (evaluate/record.py), built there under
these names and re-exported here. Field order is the JSON key order: changing
it changes results.json's bytes.

Run folder layout::

    RUN_DIR/
      config.resolved.yaml            the validated config, every default filled in
      environment.json                library versions, platform, seeds
      state.json                      artifact -> (inputs key, content sha256), for caching and resume
      circuits/base/<probe>.json      BaseCircuit
      train/<method>/lr<lr>/seed<k>/checkpoint-<step>/   Hugging Face model folders (step 0 = the base)
      measure/base/step0.json                            CheckpointMeasurement of the base model
      measure/<method>/lr<lr>/seed<k>/step<n>.json       CheckpointMeasurement
      preserve/heads.json             the heads the third arm (sft-preserve) keeps, lambda, how they were chosen
      dcv/<probe>.json                ProbeDCV
      results.json                    Results (deterministic: no timings)
      results.csv                     one row per method x seed x checkpoint x probe
      timings.json                    wall-clock seconds per stage and item
      report.md, report.html, figures/*.png
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from circuitdrift.evaluate.record import CheckpointMeasurement, ProbeMeasurement, Record  # noqa: F401 (re-exported)

# An interval statistic over seeds (compare/stats.py, compare/intervals.py): {mean, lo, hi, n, missing}, plus
# "test", "n_a", "n_b", "df" for differences, "source" where not from per-seed values. Consumers read it with
# format_stat/describe_diff, which tolerate any of those being absent.
Stat = dict[str, Any]


class BaseCircuit(Record):
    """The base model's circuit for one prior-capability probe (stage: base circuits)."""

    probe: str
    method: str  # exact | attribution | eap-ig
    metric: str  # prob | logit-diff
    ablation: str  # ablation used for scoring (corrupt | zero | mean)
    n_examples: int
    accuracy: float  # F(M): exact-match accuracy of the base model on the probe
    scores: list[list[float]]  # [n_layers][n_heads] head importance s_h (most negative = most important)
    circuit: list[str]  # top-k heads "L{l}.H{h}", most important first
    faithfulness: float  # F(C|M) / F(M)
    faithfulness_ablation: str  # ablation of heads outside C (zero | mean | corrupt)
    random_faithfulness: float  # mean over random circuits of the same size
    random_faithfulness_all: list[float]
    split: str | None = None  # the circuit split it was found on (None: a record from before, the test split)
    disjoint: bool | None = None  # no example shared with those its damage, CMAP and accuracy are measured on


class ProbeDCV(Record):
    """Differential circuit vulnerability for one probe at the final checkpoint (stage: compare).

    ``delta_*`` and ``V`` are means over seeds; ``D`` is the mean over seeds of
    D(h); ``preservation`` holds per-method means over seeds.
    """

    probe: str
    step: int
    tau: float
    delta_sft: list[list[float]]
    delta_rl: list[list[float]]
    V: list[list[float]]
    vulnerable: list[dict]  # {layer, head, name, V, in_base_circuit}
    D: list[list[float]]
    preservation: dict[str, float]
    base_circuit: list[str]
    delta_preserve: list[list[float]] | None = None  # the third arm's (sft-preserve) CMAP, mean over seeds
    delta_reverse: dict[str, list[list[float]]] = Field(default_factory=dict)  # method -> reverse CMAP (base head
    # into the fine-tuned model), mean over seeds; empty where it was not measured
    preserved_heads: list[str] | None = None  # the heads sft-preserve kept (pipeline/stages.py preserve_heads)
    threshold: str = "absolute"  # absolute: V > tau; relative: V / |s_h| > tau on the base circuit's heads
    V_relative: list[list[float | None]] | None = None  # V / |s_h| (base circuit's heads; None elsewhere)


class AggregateSettings(Record):
    target_goal: float
    tau: float
    level: float  # the interval's coverage
    kl: str = "sampled"  # which KL the "kl" numbers are: exact (answer-position, the primary) or sampled (estimate)


class MethodCurves(Record):
    """One method's curves over checkpoint steps: one Stat per step."""

    steps: list[int]
    target_accuracy: list[Stat]
    kl: list[Stat]
    forgetting_mean: list[Stat]
    preservation_mean: list[Stat]
    damage_mean: list[Stat]
    probes: dict[str, dict[str, list[Stat]]]  # probe -> accuracy | forgetting | preservation | damage -> per step


class LineFit(Record):
    slope: float | None
    intercept: float | None
    r2: float | None
    n: int


class MethodR(Record):
    r: float | None
    n: int


class RazorPoint(Record):
    method: str
    seed: int
    step: int
    kl: float
    forgetting: float


class Razor(Record):
    """RL's Razor: forgetting (mean over probes) against KL over every checkpoint after step 0."""

    fit: LineFit
    pearson_r: float | None
    by_method: dict[str, MethodR]
    points: list[RazorPoint]


class Aggregate(Record):
    """results.json "aggregate": the matched-steps view, means and intervals over seeds (compare/aggregate.py)."""

    settings: AggregateSettings
    methods: list[str]
    probes: list[str]
    base_accuracy: dict[str, dict[str, dict[str, float | None]]]  # method -> seed -> probe -> accuracy
    curves: dict[str, MethodCurves]
    endpoints: dict[str, dict[str, Any]]  # method -> final-checkpoint Stats (layout in compare/aggregate.py)
    sft_minus_rl: dict[str, Any]  # {a, b, available} and, when available, one difference Stat per quantity
    preserve_minus_sft: dict[str, Any] = Field(default_factory=dict)  # the same, sft-preserve minus sft
    razor: Razor


class SummaryRow(Record):
    """One method's row of the summary table; every number a Stat over seeds at the final checkpoint."""

    method: str
    n_seeds: int
    final_steps: list[int]
    steps_to_goal: Stat
    never_reached: int
    final_target_accuracy: Stat
    forgetting: dict[str, Stat]
    forgetting_mean: Stat
    kl: Stat
    preservation: Stat
    damage: Stat
    degraded_heads: Stat
    vulnerable_heads: dict[str, Stat]
    benchmark_forgetting: dict[str, Stat] = Field(default_factory=dict)  # LM-Eval task -> base - final score


class Results(Record):
    """results.json: the whole experiment's numbers, deterministic given config and seeds."""

    name: str
    base_model: str
    target_task: str
    probes: list[str]
    methods: list[str]
    seeds: list[int]
    steps: list[int]
    learning_rates: dict[str, list[float]] = Field(default_factory=dict, description="method -> swept rates")
    primary_learning_rate: dict[str, float] = Field(
        default_factory=dict, description="method -> the rate of the matched-steps view (best final accuracy on "
        "selection_split)")
    selection_split: str = Field("test", description="the split learning rates and matched levels were chosen on "
                                 "(validation; test only for records without a validation accuracy)")
    base: dict = Field(description="target_accuracy and per-probe accuracy of the base model")
    base_circuits: dict[str, BaseCircuit]
    measurements: list[CheckpointMeasurement]
    dcv: dict[str, ProbeDCV]
    aggregate: Aggregate
    summary: list[SummaryRow]
    sweep: dict = Field(default_factory=dict, description="per-run finals, frontiers and the matched-accuracy "
                        "comparison; see compare/sweep.py")
    rollouts: dict = Field(default_factory=dict, description="RL runs' rollout windows and detected collapse, "
                           "keyed 'method/lr/seed' (train/monitor.py)")
    controls: dict = Field(default_factory=dict, description="the base circuits against random head sets of the "
                           "same size, and circuit distance along training (compare/controls.py)")
    preserve: dict = Field(default_factory=dict, description="the heads sft-preserve kept, lambda, and how the "
                           "heads were chosen (RUN/preserve/heads.json); empty without the third arm")
    label_nll: dict = Field(default_factory=dict, description="SFT arm -> its label's NLL under the base: nats "
                            "(summed over the label's tokens), nats_per_token, n_examples (train/label_nll.py)")

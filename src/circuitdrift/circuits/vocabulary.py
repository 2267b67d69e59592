"""The names of the circuit settings, spelled once: methods, metrics and ablations.

The Literal types type the pipeline config's fields; the tuples are what the
circuits/ functions check against and what the CLI's choices are built from,
so the three can never list different values.
"""

from __future__ import annotations

from typing import Literal, get_args

ScoringMethod = Literal["exact", "attribution", "eap-ig"]  # one pass of head scores (circuits/scoring.py)
# find_circuit: one-shot scoring, iterative pruning, or learned masks (DCM, circuits/dcm.py)
CircuitMethod = Literal["exact", "attribution", "eap-ig", "prune", "dcm"]
CmapMethod = Literal["exact", "attribution"]  # cross-model patching
Metric = Literal["prob", "logit-diff", "logprob", "accuracy", "prob-diff"]
Ablation = Literal["corrupt", "zero", "mean"]
DcvThreshold = Literal["relative", "absolute"]  # what tau bounds: V(h) / |s_h| on the base circuit, or V(h)

SCORING_METHODS: tuple[str, ...] = get_args(ScoringMethod)
CIRCUIT_METHODS: tuple[str, ...] = get_args(CircuitMethod)
CMAP_METHODS: tuple[str, ...] = get_args(CmapMethod)
METRICS: tuple[str, ...] = get_args(Metric)
ABLATIONS: tuple[str, ...] = get_args(Ablation)
DCV_THRESHOLDS: tuple[str, ...] = get_args(DcvThreshold)

"""Measurements per checkpoint: target accuracy, prior-capability accuracy, forgetting, forward KL."""

from circuitdrift.evaluate.accuracy import Accuracy, greedy_completions, target_accuracy
from circuitdrift.evaluate.checkpoint import BaseSide, CheckpointMeasures, checkpoint_measures
from circuitdrift.evaluate.kl import ForwardKL, forward_kl
from circuitdrift.evaluate.measure import evaluate_model
from circuitdrift.evaluate.settings import MeasureSettings
from circuitdrift.io import write_json

__all__ = [
    "Accuracy",
    "BaseSide",
    "CheckpointMeasures",
    "ForwardKL",
    "MeasureSettings",
    "checkpoint_measures",
    "evaluate_model",
    "forward_kl",
    "greedy_completions",
    "target_accuracy",
    "write_json",
]

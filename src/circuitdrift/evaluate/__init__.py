"""Measurements per checkpoint: target accuracy, prior-capability accuracy, forgetting, forward KL."""

from circuitdrift.evaluate.accuracy import Accuracy, greedy_completions, target_accuracy
from circuitdrift.evaluate.kl import ForwardKL, forward_kl
from circuitdrift.evaluate.measure import EvalSettings, evaluate_model
from circuitdrift.io import write_json

__all__ = [
    "Accuracy",
    "EvalSettings",
    "ForwardKL",
    "evaluate_model",
    "forward_kl",
    "greedy_completions",
    "target_accuracy",
    "write_json",
]

"""circuitdrift: what did fine-tuning do to this model's circuits and capabilities?

The public API is re-exported here by name and imported lazily, so
``import circuitdrift`` is cheap and has no side effects.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # the settings users write: in a config file or as Python values
    "ExperimentConfig": "circuitdrift.pipeline.config",
    "AnalysisSettings": "circuitdrift.pipeline.config",
    "TrainConfig": "circuitdrift.train.config",
    "LoraSettings": "circuitdrift.train.config",
    "TransferConfig": "circuitdrift.transfer.config",
    "MeasureSettings": "circuitdrift.evaluate.settings",
    "CircuitSettings": "circuitdrift.circuits.discovery",
    "load_model": "circuitdrift.models.load",
    "load_tokenizer": "circuitdrift.models.load",
    "HeadLayout": "circuitdrift.models.heads",
    "head_hooks": "circuitdrift.models.heads",
    "record_heads": "circuitdrift.models.heads",
    "tiny_model": "circuitdrift.models.tiny",
    "build_word_tokenizer": "circuitdrift.models.wordlevel",
    "Task": "circuitdrift.tasks.base",
    "Example": "circuitdrift.tasks.base",
    "load_task_file": "circuitdrift.tasks.files",
    "resolve_task": "circuitdrift.tasks.registry",
    "builtin_tasks": "circuitdrift.tasks.registry",
    "HeadScores": "circuitdrift.circuits.scores",
    "head_scores": "circuitdrift.circuits.scoring",
    "find_circuit": "circuitdrift.circuits.discovery",
    "prune_circuit": "circuitdrift.circuits.pruning",
    "task_accuracy": "circuitdrift.circuits.metrics",
    "cross_model_patch": "circuitdrift.circuits.crossmodel",
    "differential_vulnerability": "circuitdrift.circuits.vulnerability",
    "circuit_preservation": "circuitdrift.circuits.vulnerability",
    "faithfulness": "circuitdrift.circuits.faithfulness",
    "select_circuit": "circuitdrift.circuits.discovery",
    "heads_result": "circuitdrift.circuits.results",
    "cmap_result": "circuitdrift.circuits.results",
    "dcv_result": "circuitdrift.circuits.results",
    "faithfulness_result": "circuitdrift.circuits.results",
    "train_sft": "circuitdrift.train.run",
    "train_rl": "circuitdrift.train.run",
    "train_sft_preserve": "circuitdrift.train.run",
    "Preservation": "circuitdrift.train.preserve",
    "dcm_masks": "circuitdrift.circuits.dcm",
    "target_accuracy": "circuitdrift.evaluate.accuracy",
    "forward_kl": "circuitdrift.evaluate.kl",
    "run_experiment": "circuitdrift.pipeline.run",
    "build_report": "circuitdrift.report.build",
    "resolve_prompts": "circuitdrift.tasks.prompt_sets",
    "difference_of_means": "circuitdrift.steer.vectors",
    "SteeringVectors": "circuitdrift.steer.vectors",
    "steering": "circuitdrift.steer.steering",
    "make_judge": "circuitdrift.judge.factory",
    "JudgeSettings": "circuitdrift.judge.base",
    "transfer_rows": "circuitdrift.transfer.ratio",
    "run_transfer": "circuitdrift.transfer.run",
    "CircuitDriftError": "circuitdrift.errors",
    "InputError": "circuitdrift.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'circuitdrift' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__

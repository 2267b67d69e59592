"""Fine-tuning with SFT and RL (GRPO / Dr. GRPO) through TRL, with a checkpoint trajectory.

The names below are imported on first use (PEP 562), not with the package: ``circuitdrift.train.config`` and
``.preservation`` are light, and a process that only reads them (a measurement worker unpickling its job) does
not import TRL and the training stack.
"""

from importlib import import_module

_EXPORTS = {
    "LoraSettings": "config", "RLSettings": "config", "SFTSettings": "config", "TrainConfig": "config",
    "load_train_config": "config", "Preservation": "preservation", "train": "run", "train_rl": "run",
    "train_sft": "run", "train_sft_preserve": "run", "training_log": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)

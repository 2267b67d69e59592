"""Fine-tuning with SFT and RL (GRPO / Dr. GRPO) through TRL, with a checkpoint trajectory."""

from circuitdrift.train.config import LoraSettings, RLSettings, SFTSettings, TrainConfig, load_train_config
from circuitdrift.train.preserve import Preservation
from circuitdrift.train.run import train, train_rl, train_sft, train_sft_preserve, training_log

__all__ = [
    "LoraSettings",
    "Preservation",
    "RLSettings",
    "SFTSettings",
    "TrainConfig",
    "load_train_config",
    "train",
    "train_rl",
    "train_sft",
    "train_sft_preserve",
    "training_log",
]

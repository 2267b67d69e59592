"""pyproject's floors are versions the code was tested with: an older transformers lacks an argument we pass."""

import dataclasses
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version
from trl import GRPOConfig, SFTConfig

from circuitdrift.train.config import TrainConfig
from circuitdrift.train.trainer_args import common_args

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
TESTED = {"transformers": Version("5.24"), "trl": Version("1.16")}  # activation_checkpointing: in 5.24, not 5.17


def floors() -> dict[str, Version]:
    text = PYPROJECT.read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    out = {}
    for line in re.findall(r'"([^"]+)"', block):
        req = Requirement(line)
        out[req.name] = next(Version(s.version) for s in req.specifier if s.operator == ">=")
    return out


def test_the_floors_are_the_tested_versions_and_installed_ones_meet_them():
    found = floors()
    for name, tested in TESTED.items():
        assert found[name] >= tested, f"pyproject allows {name}>={found[name]}, tested from {tested}"
        assert Version(metadata.version(name)) >= found[name]


def test_every_trainer_argument_exists_in_the_installed_configs(tmp_path):
    args = common_args(TrainConfig(gradient_checkpointing=True), "sft", tmp_path)
    for cls in (SFTConfig, GRPOConfig):
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(args) <= fields, sorted(set(args) - fields)

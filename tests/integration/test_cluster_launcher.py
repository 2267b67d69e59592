"""The sweep's training runs through submitit (launcher.kind: submitit) give the local pool's results byte for byte,
and a sweep half-finished through one launcher is finished by the other without training a run again."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from circuitdrift.errors import InputError
from circuitdrift.pipeline.launch import SubmititSettings, executor_parameters
from circuitdrift.pipeline.run import run_experiment
from tests.conftest import write_tiny_experiment

pytestmark = pytest.mark.slow


def variant(config: Path, name: str, **changes) -> Path:
    data = yaml.safe_load(config.read_text())
    data.update(changes)
    path = config.with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def files(run: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.glob(pattern)) if p.is_file()}


def test_submitit_sweep_equals_the_local_pool_and_each_resumes_the_other(tmp_path):
    config = write_tiny_experiment(tmp_path, seeds=(0,))
    local = run_experiment(config, tmp_path / "local", quiet=True, jobs=2)
    weights = "train/*/*/*/checkpoint-*/model.safetensors"

    cluster = variant(config, "cluster", launcher={"kind": "submitit", "submitit": {"cluster": "local"}})
    # jobs=1: the training runs go through submitit's jobs whatever ``jobs`` says; the measurements then run in this
    # process instead of starting a pool of worker processes (the results do not depend on the worker count)
    whole = run_experiment(cluster, tmp_path / "cluster", quiet=True, jobs=1)
    assert (whole / "results.json").read_bytes() == (local / "results.json").read_bytes()
    assert files(whole, weights) == files(local, weights) and files(local, weights)
    assert list((whole / "submitit").glob("*_result.pkl"))  # the runs did go through submitit's jobs

    # half the sweep (the SFT runs) through submitit; the rest by the local launcher, in the same folder (jobs=1:
    # the resume is decided by the run folder's records, not by the worker count, and starts no worker processes).
    # (submitit's debug executor leaves its log files open: a ResourceWarning, an error under this suite's filters)
    half = variant(config, "half", methods=["sft"],
                   launcher={"kind": "submitit", "submitit": {"cluster": "local"}})
    mixed = run_experiment(half, tmp_path / "mixed", quiet=True, jobs=1)
    sft = files(mixed, "train/sft/*/*/checkpoint-*/model.safetensors")
    stamps = {p: p.stat().st_mtime_ns for p in mixed.glob("train/sft/*/*/checkpoint-*/model.safetensors")}
    run_experiment(config, tmp_path / "mixed", quiet=True, jobs=1)  # the local launcher, its items in this process
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the SFT runs were not trained again
    assert files(mixed, "train/sft/*/*/checkpoint-*/model.safetensors") == sft
    assert (mixed / "results.json").read_bytes() == (local / "results.json").read_bytes()


def test_submitit_parameters_and_a_missing_engine():
    settings = SubmititSettings(cluster="slurm", timeout_min=600, gpus_per_node=1, partition="gpu",
                                array_parallelism=4, slurm={"account": "lab"})
    assert executor_parameters(settings) == {"name": "circuitdrift", "timeout_min": 600, "gpus_per_node": 1,
                                             "slurm_partition": "gpu", "slurm_array_parallelism": 4,
                                             "slurm_account": "lab"}


def test_a_launcher_typo_is_one_line(tmp_path):
    from circuitdrift.pipeline.config import load_config

    config = write_tiny_experiment(tmp_path, seeds=(0,))
    bad = variant(config, "bad", launcher={"kind": "ray"})
    with pytest.raises(InputError, match=r"launcher\.kind"):
        load_config(bad)

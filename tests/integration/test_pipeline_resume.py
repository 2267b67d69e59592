"""The whole experiment on a tiny model: reproducible, cached, invalidated precisely, and kill-safe.

A reference run is made once; every other run must end with a byte-identical
results.json. Kills use SIGKILL on a real `circuitdrift run` process at each
stage (base circuits, training, measurements, report).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from circuitdrift.pipeline.run import run_experiment
from tests.conftest import write_tiny_experiment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    config = write_tiny_experiment(root)
    reference = run_experiment(config, root / "reference", quiet=True)
    return root, config, reference


def results_bytes(run_dir: Path) -> bytes:
    return (run_dir / "results.json").read_bytes()


def mtimes(run_dir: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.glob(pattern) if p.is_file()}


def test_same_config_gives_byte_identical_results(experiment, tmp_path):
    root, config, reference = experiment
    again = run_experiment(config, tmp_path / "again", quiet=True)
    assert results_bytes(again) == results_bytes(reference)
    for name in ("config.resolved.yaml", "environment.json", "timings.json", "results.csv", "report.html"):
        assert (again / name).is_file()
    env = yaml.safe_load((again / "environment.json").read_text())
    assert env["seeds"] == [0, 1] and env["libraries"]["torch"]


def test_rerun_skips_finished_stages(experiment):
    root, config, reference = experiment
    before = mtimes(reference, "measure/**/*.json") | mtimes(reference, "circuits/**/*.json")
    trained = mtimes(reference, "train/**/*.safetensors")
    run_experiment(config, reference, quiet=True)
    assert mtimes(reference, "measure/**/*.json") | mtimes(reference, "circuits/**/*.json") == before
    assert mtimes(reference, "train/**/*.safetensors") == trained


def test_changed_setting_recomputes_only_what_depends_on_it(experiment, tmp_path):
    root, config, reference = experiment
    run_dir = tmp_path / "changed"
    run_experiment(config, run_dir, quiet=True)
    measured = mtimes(run_dir, "measure/**/*.json")
    circuits = mtimes(run_dir, "circuits/**/*.json")
    trained = mtimes(run_dir, "train/**/*.safetensors")
    data = yaml.safe_load(config.read_text())
    data["analysis"]["tau"] = 0.0  # only the comparison depends on tau
    tau_config = tmp_path / "tau.yaml"
    tau_config.write_text(yaml.safe_dump(data))
    run_experiment(tau_config, run_dir, quiet=True)
    assert mtimes(run_dir, "measure/**/*.json") == measured and mtimes(run_dir, "circuits/**/*.json") == circuits
    data["analysis"]["top_k"] = 2  # circuits and measurements depend on top_k; training does not
    topk_config = tmp_path / "topk.yaml"
    topk_config.write_text(yaml.safe_dump(data))
    run_experiment(topk_config, run_dir, quiet=True)
    assert mtimes(run_dir, "train/**/*.safetensors") == trained
    new_measured = mtimes(run_dir, "measure/**/*.json")
    assert all(new_measured[k] != measured[k] for k in measured)
    assert all(len(c["circuit"]) == 2 for c in yaml.safe_load((run_dir / "results.json").read_text())
               ["base_circuits"].values())


def test_edited_or_truncated_artifacts_are_recomputed(experiment, tmp_path):
    root, config, reference = experiment
    run_dir = tmp_path / "edited"
    run_experiment(config, run_dir, quiet=True)
    measurement = run_dir / "measure/sft/seed0/step1.json"
    measurement.write_text(measurement.read_text().replace('"target_accuracy": ', '"target_accuracy": 1'))
    circuit = next((run_dir / "circuits/base").glob("*.json"))
    circuit.write_text(circuit.read_text()[:40])
    run_experiment(config, run_dir, quiet=True)
    assert results_bytes(run_dir) == results_bytes(reference)


KILL_POINTS = {
    "base circuits": "circuits/base/probe-a.json",
    "training": "train/sft/seed0/checkpoint-1/model.safetensors",
    "measurements": "measure/sft/seed0/step1.json",
    "report": "figures",
}


@pytest.mark.parametrize("stage", list(KILL_POINTS))
def test_sigkill_then_rerun_completes_identically(experiment, tmp_path, stage):
    root, config, reference = experiment
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "circuitdrift", "run", str(config), "--out", str(run_dir), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    marker = run_dir / KILL_POINTS[stage]
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"the run finished before reaching {stage}; the kill point is too late"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run_dir / "results.json").exists() or stage == "report"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert results_bytes(run_dir) == results_bytes(reference)
    assert not list(run_dir.rglob(".*.tmp"))
    for sub in ("report.html", "report.md", "results.csv"):
        assert (run_dir / sub).stat().st_size > 0

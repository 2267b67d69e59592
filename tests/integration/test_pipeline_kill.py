"""The whole experiment on a tiny model is kill-safe: SIGKILL on a real `circuitdrift run` process at each stage
(base circuits, training, measurements, report), then a rerun, ends with the reference run's byte-identical
results.json. Split from test_pipeline_resume.py so pytest-xdist runs the two files side by side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import results_bytes

pytestmark = pytest.mark.slow


KILL_POINTS = {
    "base circuits": "circuits/base/probe-a.json",
    "training": "train/sft/lr0.01/seed0/checkpoint-1/model.safetensors",
    "measurements": "measure/sft/lr0.01/seed0/step1.json",
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

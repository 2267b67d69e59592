"""The whole experiment on a tiny model is kill-safe: one `circuitdrift run` process chain, SIGKILLed once in each
stage in turn (base circuits, training, measurements, report), each kill followed by a rerun that resumes the
folder, ends with the reference run's byte-identical results.json.

One chain instead of one kill-and-rerun per stage: each rerun resumes what the kills before it left, so the
experiment is run once across the chain rather than once per stage. Split from test_pipeline_resume.py so
pytest-xdist runs the two files side by side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import results_bytes, tiny_reference

pytestmark = pytest.mark.slow


# The first file each stage writes, in the order the stages run (pipeline/run.py's run_single): its appearance
# means that stage has begun; the next stage's means it is over.
KILL_POINTS = {
    "base circuits": "circuits/base/probe-a.json",
    "training": "train/sft/lr0.01/seed0/checkpoint-1/model.safetensors",
    "measurements": "measure/sft/lr0.01/seed0/step1.json",
    "report": "figures",
}
FINISHED = "timings.json"  # written last, once the report is done


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The reference run in this process (jobs=1): no worker processes to start, and the results do not depend on
    the worker count (test_pipeline_resume.py). The killed chain runs with one worker per core, as a user's would."""
    return tiny_reference(tmp_path_factory, jobs=1)


def kill_at(cmd: list[str], env: dict, marker) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``marker`` exists; fails when the run ended before that."""
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, f"the run ended before writing {marker}; the kill point is too late"
        assert marker.exists(), f"{marker} not written within 300 s"
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


def test_sigkill_in_every_stage_then_rerun_completes_identically(experiment, tmp_path):
    root, config, reference = experiment
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "circuitdrift", "run", str(config), "--out", str(run_dir), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    stages = list(KILL_POINTS)
    for i, stage in enumerate(stages):
        assert not (run_dir / KILL_POINTS[stage]).exists(), f"{stage} had begun before this run was started"
        kill_at(cmd, env, run_dir / KILL_POINTS[stage])
        # the kill landed inside this stage: it had begun, no later stage had, and the run had not finished
        later = [s for s in stages[i + 1:] if (run_dir / KILL_POINTS[s]).exists()]
        assert not later, f"killed during {stage}, but {later} had begun"
        assert not (run_dir / FINISHED).exists(), f"killed during {stage}, but the run had finished"
        assert not (run_dir / "results.json").exists() or stage == "report"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert results_bytes(run_dir) == results_bytes(reference)
    assert not list(run_dir.rglob(".*.tmp"))
    for sub in ("report.html", "report.md", "results.csv", FINISHED):
        assert (run_dir / sub).stat().st_size > 0

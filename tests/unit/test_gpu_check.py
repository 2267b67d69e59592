"""benchmarks/gpu-check.sh --tiny: every part of the GPU self-check runs on CPU and lands in one JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_gpu_benchmark import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("environment", "pytest", "train", "cmap", "benchmark")


@pytest.mark.slow
def test_gpu_check_tiny_runs_every_part_on_cpu_and_writes_one_json(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = tmp_path / "check.json"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu-check.sh"), "--tiny", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result == json.loads(done.stdout)  # printed and written alike
    assert result["ok"] and result["errors"] == {}
    assert set(PARTS) <= set(result) and set(result["seconds"]) == set(PARTS)
    assert result["pytest"]["returncode"] == 0 and "passed" in result["pytest"]["summary"]
    for method in ("sft", "rl"):
        part = result["train"][method]
        assert part["weights_dtype"] == part["saved_dtype"] == "float32"
        assert part["changed_fraction"] > 0.2 and part["below_half_bf16_step_fraction"] > 0.5
    assert result["cmap"]["exact"]["planted_head_found"] and result["cmap"]["attribution"]["planted_head_found"]
    assert result["benchmark"]["shape"] == "tiny" and "errors" not in result["benchmark"]


def test_every_failed_part_is_an_error_entry_and_the_json_is_still_written(tmp_path, monkeypatch, capsys):
    check = load_benchmark("gpu_check")

    def fails(message):
        def run(*args, **kwargs):
            raise RuntimeError(message)
        return run

    monkeypatch.setattr(check, "run_pytest", fails("pytest crashed"))
    monkeypatch.setattr(check, "train_steps", fails("CUDA out of memory"))
    monkeypatch.setattr(check, "cross_device_cmap", fails("device mismatch"))
    monkeypatch.setattr(check, "benchmark", fails("gpu.py died"))
    out = tmp_path / "sub" / "check.json"
    assert check.main(["--tiny", "--out", str(out)]) == 1
    result = json.loads(out.read_text())
    assert result["errors"] == {"pytest": "RuntimeError: pytest crashed", "train": "RuntimeError: CUDA out of memory",
                                "cmap": "RuntimeError: device mismatch", "benchmark": "RuntimeError: gpu.py died"}
    assert result["environment"]["torch"] and result["ok"] is False
    assert json.loads(capsys.readouterr().out) == result


def test_moved_weights_counts_what_bf16_weights_would_have_lost():
    import torch

    check = load_benchmark("gpu_check")
    start = torch.tensor([1.0, 1.0, 1.0, 0.5])
    # bf16's step at 1.0 is 2^-7: half of it is 2^-8; at 0.5 half a step is 2^-9
    after = start + torch.tensor([2.0**-10, 2.0**-6, 0.0, 2.0**-9])
    moved = check.moved_weights({"w": start}, {"w": after})
    assert (moved["changed"], moved["below_half_bf16_step"]) == (3, 1)
    assert moved["changed_fraction"] == 0.75

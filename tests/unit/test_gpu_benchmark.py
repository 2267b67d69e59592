"""benchmarks/gpu.sh --tiny: the GPU benchmark's own code, at a tiny shape on CPU, prints the documented JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_runs_tiny_on_cpu_and_prints_one_json():
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--tiny"], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)  # stdout is the JSON alone
    assert result["shape"] == "tiny" and result["device"] == "cpu"
    for name in ("attribution", "exact", "cmap_attribution", "cmap_exact"):
        part = result["heads"][name]
        assert part["finite"] and part["seconds"] > 0 and part["tokens_per_s"] > 0 and part["peak_memory_gib"] > 0
    for method in ("sft", "rl"):
        part = result[method]
        assert part["seconds"] > 0 and part["tokens_per_s"] > 0 and part["peak_memory_gib"] > 0
        assert isinstance(part["loss"], float)
    assert result["rl"]["group"] == 4 and result["rl"]["rollouts"] == 4 and result["rl"]["vllm"] is False

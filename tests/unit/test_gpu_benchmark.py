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


def load_benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failing_section_is_an_error_entry_and_the_json_is_still_printed(monkeypatch, capsys):
    gpu = load_benchmark("gpu")
    real_train = gpu.train_section

    def heads_fail(*args, **kwargs):
        raise RuntimeError("CUDA out of memory\nsecond line")

    def rl_fails(method, *args, **kwargs):
        if method == "rl":
            raise ValueError("no rollouts")
        return real_train(method, *args, **kwargs)

    monkeypatch.setattr(gpu, "heads_section", heads_fail)
    monkeypatch.setattr(gpu, "train_section", rl_fails)
    released = []
    monkeypatch.setattr(gpu, "release", lambda device: released.append(str(device)))
    gpu.main(["--tiny"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["errors"] == {"heads": "RuntimeError: CUDA out of memory", "rl": "ValueError: no rollouts"}
    assert printed["sft"]["seconds"] > 0 and "heads" not in printed and "rl" not in printed
    assert released == ["cpu"] * 3  # after every section, failed or not

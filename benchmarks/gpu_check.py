"""The GPU self-check behind benchmarks/gpu-check.sh: does circuitdrift work on this GPU, and say so in one JSON.

Five parts, each guarded (a failure is an entry in ``errors``, the others still run):

- ``environment``: Python, torch and its CUDA, the GPUs, the libraries' versions;
- ``pytest``: ``pytest --device cuda`` over the tests that build models on the device;
- ``train``: one SFT step and one GRPO step through ``train()`` on a model loaded in bfloat16, as the
  pipeline loads it: the weights it trains must be float32 (train/precision.py) and must have moved,
  mostly by less than half a bf16 step of the weight, which bf16 weights could not have kept;
- ``cmap``: cross-model patching with the donor on the CPU and the receiver on the GPU, against both
  on the GPU;
- ``benchmark``: benchmarks/gpu.py's figures (reduced sizes, so the whole check fits 8 minutes).

``--tiny`` runs every part on CPU in about a minute (the test suite runs it). The JSON is written to
``--out`` and printed, whatever fails.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.helpers.toy: the chat task the trainers take

# the tests that build their models on --device (tests/conftest.py) and feed them data
DEVICE_TESTS = ("test_patching.py", "test_crossmodel.py", "test_faithfulness.py", "test_pruning.py", "test_drift.py",
                "test_dcm.py", "test_load.py", "test_eval_measures.py", "test_preserve.py",
                "test_attribution_precision.py", "test_train_steps.py")
TINY_TESTS = ("test_attribution_precision.py",)
LIBRARIES = ("circuitdrift", "torch", "transformers", "trl", "accelerate", "peft", "datasets", "vllm")
PARTS = ("environment", "pytest", "train", "cmap", "benchmark")


def environment() -> dict:
    import torch

    from circuitdrift.engine.environment import library_versions

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    versions = library_versions(LIBRARIES)
    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "gpus": gpus,
            "bf16_supported": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
            "libraries": versions}


def run_pytest(device: str, files: tuple[str, ...], timeout: int) -> dict:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device", device,
               *(str(ROOT / "tests" / "unit" / f) for f in files)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    failed = [line.split(" ")[1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    result = {"device": device, "files": list(files), "returncode": done.returncode, "summary": summary,
              "failed": failed, "seconds": round(time.perf_counter() - started, 1)}
    if done.returncode != 0:
        raise CheckFailed(f"pytest --device {device}: {summary or done.stderr.strip()[-300:]}", result)
    return result


class CheckFailed(Exception):
    """A part ran but its assertion failed; ``details`` go into the JSON beside the error."""

    def __init__(self, message: str, details: dict):
        super().__init__(message)
        self.details = details


def moved_weights(before: dict, after: dict) -> dict:
    """How far training moved the weights, and how much of it bf16 weights could not have held.

    An update smaller than half the bf16 spacing at the weight's value rounds away when the weight is
    stored in bf16; float32 master weights keep it.
    """
    import torch

    total = changed = below_bf16 = 0
    for name, start in before.items():
        delta = (after[name].float() - start).abs()
        spacing = torch.finfo(torch.bfloat16).eps * torch.exp2(torch.floor(torch.log2(start.abs().clamp_min(1e-30))))
        moved = delta > 0
        total += delta.numel()
        changed += int(moved.sum())
        below_bf16 += int((moved & (delta < spacing / 2)).sum())
    return {"elements": total, "changed": changed, "changed_fraction": changed / total,
            "below_half_bf16_step": below_bf16, "below_half_bf16_step_fraction": below_bf16 / max(changed, 1)}


def train_steps(device: str, tiny: bool) -> dict:
    """SFT then GRPO, one step each at lr 1e-5, on a model loaded in bf16 (a short float32 SFT warms it first,
    so GRPO's groups have reward variance); both must train float32 weights by sub-bf16 amounts."""
    from safetensors.torch import load_file

    from circuitdrift.models.load import load_model
    from circuitdrift.train import train
    from circuitdrift.train.checkpoints import save_model_folder
    from tests.helpers.toy import toy_model, toy_task, toy_tokenizer

    tokenizer = toy_tokenizer()
    task = toy_task(tokenizer, n=64)
    size = {} if tiny else {"hidden": 256, "n_layers": 4, "n_heads": 8, "n_kv_heads": 2}
    out: dict = {"device": device}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        warm = toy_model(tokenizer, device=device, **size)
        train("sft", warm, task, {"steps": 30, "prompts_per_step": 8, "learning_rate": 3e-3}, root / "warm-run",
              tokenizer=tokenizer)
        save_model_folder(warm, tokenizer, root / "warm")
        del warm
        for method, extra in (("sft", {}), ("rl", {"rl": {"num_generations": 4, "max_completion_length": 2}})):
            model, _ = load_model(root / "warm", dtype="bfloat16", device=device)
            start = {k: v.float().clone() for k, v in model.state_dict().items()}
            config = {"steps": 1, "prompts_per_step": 4, "learning_rate": 1e-5, **extra}
            checkpoints = train(method, model, task, config, root / method, tokenizer=tokenizer)
            trained = load_file(str(checkpoints[-1] / "model.safetensors"))
            part = {"weights_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
                    "saved_dtype": str(next(iter(trained.values())).dtype).removeprefix("torch."),
                    **moved_weights({k: start[k] for k in trained}, trained)}
            out[method] = part
            del model
            if part["weights_dtype"] != "float32" or part["changed_fraction"] < 0.2 \
                    or part["below_half_bf16_step_fraction"] < 0.5:
                raise CheckFailed(f"{method}: trained weights {part['weights_dtype']}, "
                                  f"{part['changed_fraction']:.2f} changed, "
                                  f"{part['below_half_bf16_step_fraction']:.2f} of changes below half a bf16 step",
                                  out)
    return out


def cross_device_cmap(device: str) -> dict:
    """CMAP with the donor on the CPU in float64 and the receiver on ``device`` in float32, against both there."""
    import copy

    import torch

    from circuitdrift.circuits.crossmodel import cross_model_patch
    from circuitdrift.models.wordlevel import build_word_tokenizer
    from circuitdrift.tasks.base import Task
    from tests.conftest import WORDS, make_model, toy_examples
    from tests.unit.test_crossmodel import plant

    tokenizer = build_word_tokenizer(WORDS)
    task = Task("toy", toy_examples())
    base = make_model("qwen2", tokenizer, device=device)
    tuned = plant(copy.deepcopy(base), layer=1, head=2)
    out = {"receiver": device, "donor": "cpu"}
    for method in ("exact", "attribution"):
        same = cross_model_patch(base, tuned, tokenizer, task, method=method).scores
        mixed = cross_model_patch(base, copy.deepcopy(tuned).to("cpu", torch.float64), tokenizer, task,
                                  method=method).scores
        diff = float((mixed - same).abs().max())
        out[method] = {"max_abs_difference": diff, "planted_head_found": int(mixed.abs().argmax()) == 1 * 4 + 2}
        if diff > 1e-5 or not out[method]["planted_head_found"]:
            raise CheckFailed(f"cmap {method}: donor on cpu differs by {diff:.3g} from both on {device}", out)
    return out


def benchmark(tiny: bool, timeout: int) -> dict:
    args = ["--tiny"] if tiny else ["--n", "8", "--group", "16"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    try:
        figures = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise CheckFailed(f"gpu.py printed no JSON (exit {done.returncode}): {done.stderr.strip()[-300:]}",
                          {"returncode": done.returncode}) from None
    if figures.get("errors"):
        raise CheckFailed("gpu.py: " + "; ".join(f"{k}: {v}" for k, v in figures["errors"].items()), figures)
    return figures


def guarded(result: dict, name: str, run) -> None:
    started = time.perf_counter()
    try:
        result[name] = run()
    except CheckFailed as err:
        result[name] = err.details
        result["errors"][name] = str(err)
    except Exception as err:  # noqa: BLE001 - every failure is an entry in the JSON
        lines = str(err).strip().splitlines()
        result["errors"][name] = f"{type(err).__name__}: {lines[0] if lines else ''}"[:500]
        result.setdefault("tracebacks", {})[name] = traceback.format_exc()[-2000:]
    finally:
        result.setdefault("seconds", {})[name] = round(time.perf_counter() - started, 1)
        import gc

        gc.collect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="every part on CPU at tiny sizes (about a minute)")
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"), help="the JSON file to write")
    parser.add_argument("--pytest-timeout", type=int, default=180)
    parser.add_argument("--benchmark-timeout", type=int, default=180)
    args = parser.parse_args(argv)
    result: dict = {"tiny": args.tiny, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "errors": {}}
    started = time.perf_counter()
    try:
        guarded(result, "environment", environment)
        cuda = bool(result.get("environment", {}).get("cuda_available"))
        if not args.tiny and not cuda:
            result["errors"]["device"] = "no CUDA GPU visible to torch (a CPU-only torch, or no driver); " \
                                         "--tiny runs the check on CPU"
        device = "cpu" if args.tiny or not cuda else "cuda"
        files = TINY_TESTS if args.tiny else DEVICE_TESTS
        guarded(result, "pytest", lambda: run_pytest(device, files, args.pytest_timeout))
        guarded(result, "train", lambda: train_steps(device, args.tiny))
        guarded(result, "cmap", lambda: cross_device_cmap(device))
        guarded(result, "benchmark", lambda: benchmark(args.tiny, args.benchmark_timeout))
    finally:
        result["total_seconds"] = round(time.perf_counter() - started, 1)
        result["ok"] = not result["errors"]
        text = json.dumps(result, indent=2, default=str)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""A CPU rehearsal of the real-model path: the Qwen2.5-3B config, pointed at a random-init tiny Qwen2 beside Qwen's
published tokenizer files, with its own ``dtype: bfloat16``, through ``circuitdrift run``.

Checked: the bf16-configured run trains float32 weights that move as the same run in float32 moves them (before the
precision rule they moved about half as far, in another direction), and the job count follows the device rule and
is recorded in environment.json.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from circuitdrift.engine.pool import default_jobs
from circuitdrift.pipeline.run import run_experiment
from tests.helpers.published import write_model
from tests.integration.test_published_tokenizer import CONFIG, chem_rows

pytestmark = pytest.mark.slow


def movement(run) -> tuple[torch.Tensor, str]:
    """The trained weights minus the run's own step-0 weights, flattened; and the trained file's dtype."""
    folder = run / "train" / "sft" / "lr1e-05" / "seed0"
    start, end = (load_file(str(folder / f"checkpoint-{s}" / "model.safetensors")) for s in (0, 4))
    dtype = str(next(iter(end.values())).dtype)
    return torch.cat([(end[k].float() - start[k].float()).flatten() for k in sorted(end)]), dtype


def test_the_qwen_config_in_bf16_trains_float32_weights_and_follows_the_device_rule(tmp_path):
    base = write_model(tmp_path / "base", template="qwen2.5", n_layers=2, hidden=32, n_heads=4, n_kv_heads=2)
    data = tmp_path / "sciknoweval" / "data" / "Chemistry" / "chemistry.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("\n".join(json.dumps(r) for r in chem_rows()) + "\n")
    raw = yaml.safe_load(CONFIG.read_text())
    assert raw["dtype"] == "bfloat16"  # the shipped config's own precision
    raw.update(base_model=str(base), target_task=f"sciknoweval-chem-l3:{tmp_path / 'sciknoweval'}",
               probes=["hf-induction"], methods=["sft"], seeds=[0], device="cpu")
    raw["train"].update(steps=4, prompts_per_step=2, grad_accum=1, warmup_steps=0, checkpoint_steps=[],
                        bf16=None, gradient_checkpointing=False)
    raw["analysis"].update(n_examples=4, n_random=2, top_k=3, batch_size=8)
    raw["eval"].update(target_n=4, probe_n=4, kl_samples=2, kl_max_new_tokens=2, batch_size=8, lm_eval=None)
    runs = {}
    for dtype in ("bfloat16", "float32"):
        path = tmp_path / f"{dtype}.yaml"
        path.write_text(yaml.safe_dump({**raw, "dtype": dtype, "name": f"rehearsal-{dtype}"}))
        # bf16: jobs by the device's rule (checked below); float32, the yardstick, in this process (jobs=1): its
        # one training run is in this process either way, and it starts no measurement workers
        runs[dtype] = run_experiment(path, tmp_path / dtype, quiet=True, jobs=None if dtype == "bfloat16" else 1)
    environment = json.loads((runs["bfloat16"] / "environment.json").read_text())
    assert environment["dtype"] == "bfloat16"
    assert environment["jobs"] == {"jobs": default_jobs(), "gpus": [], "reason": "device cpu: one worker per core",
                                   "start": "forkserver"}
    half, half_dtype = movement(runs["bfloat16"])
    full, _ = movement(runs["float32"])
    assert half_dtype == "torch.float32"  # the trained weights are float32 master weights
    ratio = float(half.norm() / full.norm())
    cosine = float(torch.nn.functional.cosine_similarity(half, full, dim=0))
    assert 0.8 < ratio < 1.25, ratio
    assert cosine > 0.9, cosine

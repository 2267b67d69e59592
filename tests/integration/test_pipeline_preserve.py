"""The third arm end to end on a tiny model: chosen after SFT and RL, trained, measured, reported, cached.

One seed and two steps keep it short; jobs=1 runs every item in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from circuitdrift.pipeline.run import run_experiment
from tests.conftest import write_tiny_experiment

pytestmark = pytest.mark.slow
THREE = {"methods": ["sft", "rl", "sft-preserve"], "preserve": {"lam": 1.0, "top_k": 2}, "seeds": [0, 1]}


@pytest.fixture(scope="module")
def three_arms(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    config = write_tiny_experiment(root, seeds=(0, 1), extra=THREE)
    return root, config, run_experiment(config, root / "run", quiet=True, jobs=1)


def mtimes(run_dir: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.glob(pattern) if p.is_file()}


def test_the_third_arm_runs_after_the_others_on_heads_from_their_dcv(three_arms):
    _, _, run = three_arms
    chosen = json.loads((run / "preserve" / "heads.json").read_text())
    assert chosen["source"] == "dcv" and chosen["lambda"] == 1.0 and chosen["heads"]
    if not any(chosen["per_probe"].values()):  # no head passed tau: the top k by V, and the file says so
        assert chosen["k"] == 2 and len(chosen["heads"]) == 2 and "top 2 heads by V" in chosen["selection"]
    summary = json.loads((run / "train/sft-preserve/lr0.01/seed0/train_summary.json").read_text())
    assert summary["preserve"]["heads"] == chosen["heads"]
    results = json.loads((run / "results.json").read_text())
    assert results["methods"] == ["sft", "rl", "sft-preserve"] and results["preserve"]["heads"] == chosen["heads"]
    assert [row["method"] for row in results["summary"]] == ["sft", "rl", "sft-preserve"]
    assert set(results["aggregate"]["curves"]) == {"sft", "rl", "sft-preserve"}
    assert results["aggregate"]["preserve_minus_sft"]["available"]
    assert {row["method"] for row in results["sweep"]["runs"]} == {"sft", "rl", "sft-preserve"}
    assert set(results["controls"]["random"]) == {"sft", "rl", "sft-preserve"}
    dcv = json.loads(next((run / "dcv").glob("*.json")).read_text())
    assert dcv["delta_preserve"] and set(dcv["delta_reverse"]) == {"sft", "rl", "sft-preserve"}
    assert "SFT-PRESERVE − SFT differences" in (run / "report.md").read_text(encoding="utf-8")
    timings = json.loads((run / "timings.json").read_text())
    assert {"training", "training (sft-preserve)", "measurements (sft-preserve)"} <= set(timings)


def test_a_new_lambda_retrains_only_the_third_arm(three_arms, tmp_path):
    root, config, run = three_arms
    before_sft = mtimes(run, "train/sft/**/*")
    before_preserve = mtimes(run, "train/sft-preserve/**/*.safetensors")
    data = yaml.safe_load(Path(config).read_text())
    data["preserve"]["lam"] = 2.0
    changed = tmp_path / "lam2.yaml"
    changed.write_text(yaml.safe_dump(data))
    run_experiment(changed, run, quiet=True, jobs=1)
    assert mtimes(run, "train/sft/**/*") == before_sft  # SFT and RL are reused
    after = mtimes(run, "train/sft-preserve/**/*.safetensors")
    assert after.keys() == before_preserve.keys() and all(after[k] != before_preserve[k] for k in after)
    assert json.loads((run / "preserve" / "heads.json").read_text())["lambda"] == 2.0


def test_the_third_arm_alone_keeps_the_base_circuits_heads(tmp_path):
    config = write_tiny_experiment(tmp_path, seeds=(0,), extra={"methods": ["sft-preserve"],
                                                                "preserve": {"heads": "circuit"}})
    run = run_experiment(config, tmp_path / "run", quiet=True, jobs=1)
    chosen = json.loads((run / "preserve" / "heads.json").read_text())
    circuits = [json.loads(p.read_text())["circuit"] for p in sorted((run / "circuits" / "base").glob("*.json"))]
    assert chosen["source"] == "circuit" and chosen["heads"] == list(dict.fromkeys(h for c in circuits for h in c))
    results = json.loads((run / "results.json").read_text())
    assert results["methods"] == ["sft-preserve"] and results["dcv"] == {}
    assert not results["aggregate"]["preserve_minus_sft"]["available"]  # no SFT arm to compare with

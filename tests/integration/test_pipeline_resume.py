"""The whole experiment on a tiny model: reproducible, cached, invalidated precisely, and kill-safe.

A reference run is made once per file, with one worker process per core; every other run must end with a
byte-identical results.json. The runs after it use one worker (jobs=1: every item in this process), which starts no
worker processes (each imports torch, transformers and TRL: seconds of CPU apiece); those compared with the reference
so also check that the results do not depend on the worker count. The kills (SIGKILL on a real `circuitdrift run`
process at each stage) are in test_pipeline_kill.py, so that pytest-xdist runs the two files side by side.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from circuitdrift.cli import main
from circuitdrift.engine.pool import default_jobs
from circuitdrift.pipeline.run import run_experiment
from tests.conftest import write_tiny_experiment
from tests.integration.conftest import results_bytes

pytestmark = pytest.mark.slow


def copy_of(reference: Path, run_dir: Path) -> Path:
    """A finished run in a new folder, file times kept: what a fresh run of the same config leaves (the results
    do not depend on the folder: see the first test), without training and measuring it all again."""
    shutil.copytree(reference, run_dir, copy_function=shutil.copy2)
    return run_dir


def mtimes(run_dir: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.glob(pattern) if p.is_file()}


@pytest.fixture(scope="module")
def one_job(experiment, tmp_path_factory):
    """The reference's config run again in a new folder with one worker (the reference ran with one per core): one
    run serves both the reproducibility and the worker-count check."""
    _, config, _ = experiment
    return run_experiment(config, tmp_path_factory.mktemp("again") / "one-job", quiet=True, jobs=1)


def test_same_config_gives_byte_identical_results(experiment, one_job):
    root, config, reference = experiment
    again = one_job
    assert results_bytes(again) == results_bytes(reference)
    for name in ("config.resolved.yaml", "environment.json", "timings.json", "results.csv", "report.html"):
        assert (again / name).is_file()
    env = yaml.safe_load((again / "environment.json").read_text())
    assert env["seeds"]["runs"] == [0, 1] and env["torch_threads"] == 1 and env["libraries"]["torch"]


def test_results_do_not_depend_on_the_number_of_worker_processes(experiment, one_job):
    root, config, reference = experiment  # the reference ran with one worker per core
    env = yaml.safe_load((reference / "environment.json").read_text())
    assert env["jobs"]["jobs"] == default_jobs()  # so on a machine with several cores, two worker counts
    assert results_bytes(one_job) == results_bytes(reference)


def test_rerun_skips_finished_stages(experiment):
    root, config, reference = experiment
    before = mtimes(reference, "measure/**/*.json") | mtimes(reference, "circuits/**/*.json")
    trained = mtimes(reference, "train/**/*.safetensors")
    run_experiment(config, reference, quiet=True)
    assert mtimes(reference, "measure/**/*.json") | mtimes(reference, "circuits/**/*.json") == before
    assert mtimes(reference, "train/**/*.safetensors") == trained


def test_changed_setting_recomputes_only_what_depends_on_it(experiment, tmp_path):
    root, config, reference = experiment
    run_dir = copy_of(reference, tmp_path / "changed")
    measured = mtimes(run_dir, "measure/**/*.json")
    circuits = mtimes(run_dir, "circuits/**/*.json")
    trained = mtimes(run_dir, "train/**/*.safetensors")
    data = yaml.safe_load(config.read_text())
    data["analysis"]["tau"] = 0.0  # only the comparison depends on tau
    tau_config = tmp_path / "tau.yaml"
    tau_config.write_text(yaml.safe_dump(data))
    run_experiment(tau_config, run_dir, quiet=True, jobs=1)
    assert mtimes(run_dir, "measure/**/*.json") == measured and mtimes(run_dir, "circuits/**/*.json") == circuits
    data["analysis"]["top_k"] = 2  # circuits and measurements depend on top_k; training does not
    topk_config = tmp_path / "topk.yaml"
    topk_config.write_text(yaml.safe_dump(data))
    run_experiment(topk_config, run_dir, quiet=True, jobs=1)
    assert mtimes(run_dir, "train/**/*.safetensors") == trained
    new_measured = mtimes(run_dir, "measure/**/*.json")
    assert all(new_measured[k] != measured[k] for k in measured)
    assert all(len(c["circuit"]) == 2 for c in yaml.safe_load((run_dir / "results.json").read_text())
               ["base_circuits"].values())


def test_edited_or_truncated_artifacts_are_recomputed(experiment, tmp_path):
    root, config, reference = experiment
    run_dir = copy_of(reference, tmp_path / "edited")
    measurement = run_dir / "measure/sft/lr0.01/seed0/step1.json"
    measurement.write_text(measurement.read_text().replace('"target_accuracy": ', '"target_accuracy": 1'))
    circuit = next((run_dir / "circuits/base").glob("*.json"))
    circuit.write_text(circuit.read_text()[:40])
    run_experiment(config, run_dir, quiet=True)
    assert results_bytes(run_dir) == results_bytes(reference)


def test_sweep_trains_and_compares_every_learning_rate(tmp_path):
    config = write_tiny_experiment(tmp_path, seeds=(0,), extra={
        "sweep": {"learning_rates": {"sft": [3e-2, 1e-2], "rl": [1e-2]}, "levels": 3, "allow_unequal_grids": True}})
    run_dir = run_experiment(config, tmp_path / "sweep", quiet=True, jobs=1)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["learning_rates"] == {"sft": [0.01, 0.03], "rl": [0.01]}
    assert results["sweep"]["grids"]["equal"] is False  # allowed explicitly, and the report says so
    assert "learning-rate grids differ" in (run_dir / "report.md").read_text()
    # the tiny target is one JSONL file without splits: its "validation" questions are the test's, and it says so
    assert results["selection_split"] == "test" and results["sweep"]["matched"]["selection_split"] == "test"
    rows = {(r["method"], r["learning_rate"]) for r in results["sweep"]["runs"]}
    assert rows == {("sft", 0.01), ("sft", 0.03), ("rl", 0.01)}
    for lr in ("0.01", "0.03"):
        assert (run_dir / f"measure/sft/lr{lr}/seed0/step2.json").is_file()
    finals = {r["learning_rate"]: r["final_target_accuracy"]["mean"] for r in results["sweep"]["runs"]
              if r["method"] == "sft"}
    assert results["primary_learning_rate"]["sft"] == max(sorted(finals), key=lambda lr: finals[lr])
    assert {m["learning_rate"] for m in results["measurements"] if m["method"] == "sft"} == {0.01, 0.03}
    lines = (run_dir / "results.csv").read_text().splitlines()
    assert lines[0].startswith("method,learning_rate,seed,step") and any(",0.03,0," in line for line in lines)
    assert "At matched target accuracy" in (run_dir / "report.md").read_text()
    assert set(results["rollouts"]) == {"rl/0.01/0"}  # the RL run's rollout monitor, carried into the results
    rl_row = next(r for r in results["sweep"]["runs"] if r["method"] == "rl")
    assert rl_row["rollout_collapsed_seeds"] == int(bool(results["rollouts"]["rl/0.01/0"]["collapse"]))


def test_several_target_tasks_run_one_experiment_each(experiment, tmp_path, capsys):
    root, config, reference = experiment
    data = yaml.safe_load(config.read_text())
    second = root / "target-b.jsonl"
    lines = (root / "target.jsonl").read_text().splitlines()
    second.write_text("\n".join(lines[::-1]) + "\n")  # same questions, other order: another task file
    data["target_task"] = [data["target_task"], str(second)]
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump(data))
    run_dir = run_experiment(both, tmp_path / "both", quiet=True, jobs=1)
    first = json.loads((run_dir / "target" / "results.json").read_text())
    ref = json.loads(results_bytes(reference))
    assert first["name"] == "tiny-target" and first["target_task"] == data["target_task"][0]
    assert first["measurements"] == ref["measurements"]  # the same experiment as the single-task run
    other = json.loads((run_dir / "target-b" / "results.json").read_text())
    assert other["target_task"] == str(second) and (run_dir / "target-b" / "report.html").is_file()
    index = (run_dir / "index.md").read_text()
    assert "Target task: " + data["target_task"][0] in index and "target-b/report.html" in index
    assert (run_dir / "index.html").is_file() and not (run_dir / "results.json").exists()
    page = (run_dir / "index.html").read_bytes()
    (run_dir / "index.html").unlink()
    assert main(["report", str(run_dir)]) == 0  # `circuitdrift report RUN_DIR` rebuilds the tasks and the index
    written = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert run_dir / "target-b" / "report.html" in written and (run_dir / "index.html").read_bytes() == page

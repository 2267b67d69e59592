"""`circuitdrift transfer` end to end on tiny models: a random-init model from local files, and the organism.

The tiny model reads its prompts from local files (a JailbreakBench-shaped CSV
with a ``Goal`` column, a JSONL instruction set), which is the loading path the
real-model configs use offline. Reruns must reuse every artifact and give a
byte-identical results.json; a changed student budget retrains the students only.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from circuitdrift.cli import main
from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.transfer.run import run_transfer
from tests.conftest import WORDS, make_model

pytestmark = pytest.mark.slow  # about 30 s alone on one core; the two-worker run adds the workers' start-up

BAD = [f"w{i} w{i + 1} w{(i * 7) % 40}" for i in range(28)]
GOOD = [f"w{40 + i % 8} w{(i * 3) % 40} w{i}" for i in range(32)]


def _tiny_folder(root: Path) -> Path:
    tokenizer = build_word_tokenizer(WORDS)
    model = make_model("qwen2", tokenizer, device="cpu")
    model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(root / "tiny")
    tokenizer.save_pretrained(root / "tiny")
    return root / "tiny"


def _prompt_files(root: Path) -> dict[str, str]:
    with (root / "behaviors.csv").open("w", newline="") as handle:  # JailbreakBench's columns
        writer = csv.writer(handle)
        writer.writerow(["Index", "Goal", "Target", "Behavior", "Category"])
        writer.writerows([[i, p, "Sure", "b", "c"] for i, p in enumerate(BAD)])
    (root / "benign.jsonl").write_text("".join(json.dumps({"instruction": p}) + "\n" for p in GOOD))
    (root / "bad.txt").write_text("\n".join(BAD) + "\n")
    (root / "good.txt").write_text("\n".join(GOOD) + "\n")
    return {k: str(root / f) for k, f in (("csv", "behaviors.csv"), ("jsonl", "benign.jsonl"), ("bad", "bad.txt"),
                                          ("good", "good.txt"))}


def tiny_config(root: Path, base_model: str, files: dict[str, str], **student) -> Path:
    config = {
        "name": "tiny-transfer", "base_model": base_model, "alphas": [-2.0, 2.0], "seeds": [0, 1],
        "steering": {"positive": files["bad"], "negative": files["jsonl"], "negative_column": "instruction",
                     "n": 12, "span": "at"},
        # disjoint slices of one file: the vector's benign rows 0-11, the teacher's 12-19, the probes' 20-31
        "teacher_data": {"prompts": files["jsonl"], "column": "instruction", "skip": 12, "n": 8,
                         "max_new_tokens": 4},
        "behaviour": {"prompts": files["csv"], "column": "Goal", "n": 10, "max_new_tokens": 3},
        "student": {"steps": 2, "prompts_per_step": 4, "learning_rate": 1e-3, "lora": {"r": 4, "alpha": 8},
                    **student},
        "mechanism": {"cmap_prompts": 4, "top_heads": 3},
        "analysis": {"n_boot": 200},
    }
    path = root / "transfer.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    files = _prompt_files(root)
    base = _tiny_folder(root)
    config = tiny_config(root, str(base), files)
    run = run_transfer(config, root / "run", quiet=True, jobs=1)
    return root, files, base, config, run


def test_tiny_model_pipeline_writes_the_report(tiny_run):
    root, files, base, config, run = tiny_run
    for name in ("results.json", "results.csv", "report.html", "report.md", "figures/tau.png",
                 "figures/behaviour.png", "steer/vector.safetensors", "config.resolved.yaml", "timings.json"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert [r["alpha"] for r in results["rows"]] == [-2.0, 0.0, 2.0]
    for row in results["rows"]:
        assert 0 <= row["B_teacher"]["mean"] <= 1 and row["B_student"]["seeds"] == 2
        assert row["tau_status"] in ("control", "defined", "teacher did not move")
        assert row["tau"] is None or row["tau_status"] == "defined"
        assert 0 <= row["flag_rate"] <= 1 and row["heads"] and len(row["heads"]) == 3
    assert results["random_alphas"] == [-2.0, 2.0] and results["verdict"]
    assert {c["status"] for c in results["threshold"]} <= {"none", "grid_end", "grid_start", "found"}
    for row in (r for r in results["rows"] if r["alpha"] != 0):
        assert row["B_student_random"]["seeds"] == 2 and row["random"]["quality"]["n"] == 8
        mech = row["mechanism"]
        assert len(mech["per_layer_cosine"]) == 3 and -1 <= mech["paired_cosine"]["mean"] <= 1
        assert mech["ablation"]["did"]["lo"] <= mech["ablation"]["did"]["mean"] <= mech["ablation"]["did"]["hi"]
        assert mech["logp_refusal"]["n_prompts"] == 10
    assert len((run / "teacher/alpha-2/data.jsonl").read_text().splitlines()) == 8
    base_bytes = sum(f.stat().st_size for f in base.glob("*.safetensors"))
    assert len((run / "teacher/random/alpha-2/data.jsonl").read_text().splitlines()) == 8
    report = (run / "report.md").read_text()
    assert "tau_random" in report and "paired cosine" in report and "verdict:" in report
    for alpha in ("alpha-2", "alpha0", "alpha+2"):
        for seed in (0, 1):
            student = run / f"students/{alpha}/seed{seed}"
            assert (student / "adapter/checkpoint-2/adapter_config.json").is_file()
            assert not list(student.glob("checkpoint-*")), "a full model copy was written"  # no step 0, no merge
            assert not list(student.rglob("optimizer.pt"))
            assert sum(f.stat().st_size for f in student.rglob("*") if f.is_file()) < base_bytes
    lines = (run / "results.csv").read_text().splitlines()
    assert lines[0].startswith("alpha,B_teacher") and len(lines) == 4


def test_results_do_not_depend_on_the_number_of_workers(tiny_run, tmp_path):
    root, files, base, config, run = tiny_run
    parallel = run_transfer(config, tmp_path / "two-jobs", quiet=True, jobs=2)
    assert (parallel / "results.json").read_bytes() == (run / "results.json").read_bytes()


def test_rerun_reuses_everything_and_changes_nothing(tiny_run):
    root, files, base, config, run = tiny_run
    before = (run / "results.json").read_bytes()
    run_transfer(config, run, quiet=True, jobs=1)
    assert (run / "results.json").read_bytes() == before
    timings = json.loads((run / "timings.json").read_text())
    counts = {"teachers": 5, "students": 10, "student measures": 10}  # 3 alphas + 2 random-direction, x 2 seeds
    for stage, n in counts.items():
        items = timings[stage]["items"]
        assert len(items) == n > 0, stage  # non-empty first: all() over no items would pass
        assert all(v == 0.0 for v in items.values()), stage


def test_a_changed_student_budget_retrains_students_only(tiny_run, tmp_path):
    root, files, base, config, run = tiny_run
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    changed = tiny_config(tmp_path, str(base), files, steps=3)
    run_transfer(changed, copy, quiet=True, jobs=1)
    timings = json.loads((copy / "timings.json").read_text())
    teachers, students = timings["teachers"]["items"], timings["students"]["items"]
    assert len(teachers) == 5 and len(students) == 10  # non-empty first: all() over no items would pass
    assert all(v == 0.0 for v in teachers.values()) and all(v > 0.0 for v in students.values())
    assert (copy / "students/alpha0/seed0/adapter/checkpoint-3/adapter_config.json").is_file()


def test_bad_configs_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nteacher_data: {temprature: 1.0}\n")
    assert main(["transfer", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {bad}: teacher_data.temprature: unknown key" and "\n" not in err
    bad.write_text("alphas: [0.0]\n")
    assert main(["transfer", str(bad)]) == 2
    assert "alphas" in capsys.readouterr().err
    bad.write_text("behaviour: {prompts: no-such-set}\n")
    assert main(["transfer", str(bad), "--out", str(tmp_path / "never")]) == 2
    assert "behaviour.prompts" in capsys.readouterr().err and not (tmp_path / "never").exists()
    assert main(["transfer", str(tmp_path / "missing.yaml")]) == 2


def test_a_damaged_artifact_is_recomputed_alone(tiny_run, tmp_path):
    root, files, base, config, run = tiny_run
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "measure/alpha0/seed1.json").write_text("{}")  # hand-edited: its hash no longer matches
    run_transfer(config, copy, quiet=True, jobs=1)
    timings = json.loads((copy / "timings.json").read_text())
    measured, students = timings["student measures"]["items"], timings["students"]["items"]
    assert len(measured) == len(students) == 10  # every item timed: the checks below are not over nothing
    assert {k for k, v in measured.items() if v > 0} == {"alpha 0 seed 1"}
    assert all(v == 0.0 for v in students.values())
    assert (copy / "results.json").read_bytes() == (run / "results.json").read_bytes()


def test_organism_teacher_moves_and_the_pipeline_runs(tmp_path):
    """The shipped organism: steering against its refusal direction raises the teacher's attack success."""
    config = {
        "name": "organism-mini", "alphas": [-0.5], "seeds": [0],
        "steering": {"n": 40},
        "teacher_data": {"n": 12, "max_new_tokens": 4},
        "behaviour": {"n": 30, "max_new_tokens": 6},
        "student": {"steps": 2, "prompts_per_step": 4, "learning_rate": 1e-3, "lora": {"r": 4, "alpha": 8}},
        "mechanism": {"cmap_prompts": 4},
        "analysis": {"n_boot": 200},
    }
    path = tmp_path / "organism.yaml"
    path.write_text(yaml.safe_dump(config))
    run = run_transfer(path, tmp_path / "run", quiet=True, jobs=1)
    rows = {r["alpha"]: r for r in json.loads((run / "results.json").read_text())["rows"]}
    assert rows[0.0]["B_teacher"]["mean"] <= 0.05  # the organism refuses
    assert rows[-0.5]["B_teacher"]["mean"] >= 0.5  # steered, it complies
    assert rows[-0.5]["tau_status"] == "defined" and rows[-0.5]["flag_rate"] <= 0.2


def test_a_student_cut_short_is_trained_again(tiny_run, tmp_path):
    """What a kill during training leaves (the run begun in state.json, no final checkpoint, no summary)."""
    root, files, base, config, run = tiny_run
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    student = copy / "students/alpha-2/seed1"
    shutil.rmtree(student / "adapter")
    (student / "train_summary.json").unlink()
    state = json.loads((copy / "state.json").read_text())
    state["students/alpha-2/seed1"]["sha256"] = None  # as RunStore.begin left it
    (copy / "state.json").write_text(json.dumps(state))
    run_transfer(config, copy, quiet=True, jobs=1)
    timings = json.loads((copy / "timings.json").read_text())
    assert {k for k, v in timings["students"]["items"].items() if v > 0} == {"alpha -2 seed 1"}
    assert (copy / "results.json").read_bytes() == (run / "results.json").read_bytes()


def test_report_states_a_crossing_found_inside_the_grid(tiny_run, tmp_path):
    """The report from results.json alone: a crossing found between two grid points is drawn and described."""
    import shutil

    from circuitdrift.transfer.report import build_transfer_report

    root, files, base, config, run = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    results = json.loads((copy / "results.json").read_text())
    results["threshold"] = [{"key": "tau", "side": "negative", "grid": [-1.0, -2.0], "status": "found",
                             "alpha": -2.0, "bracket": [-1.0, -2.0], "interpolated": -1.5}]
    (copy / "results.json").write_text(json.dumps(results))
    build_transfer_report(copy)
    report = (copy / "report.md").read_text()
    assert "crossing between -1 and -2, interpolated at alpha = -1.5" in report
    assert (copy / "figures/tau.png").stat().st_size > 0

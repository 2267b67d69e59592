"""The three-arm experiment (letter SFT, word SFT, RL) on the shipped organism, at a budget of seconds:
each SFT arm's label NLL under the base, the word arm trained on words, the chat probe, collapse flags."""

from __future__ import annotations

import json

import pytest
import yaml

from circuitdrift.organism.paths import organism_dir
from circuitdrift.pipeline.run import run_experiment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (organism_dir() / "model.safetensors").is_file(), reason="organism weights not built"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("three-arms")
    config = {
        "name": "three-arms", "base_model": "organism", "target_task": "science-qa",
        "probes": ["factual", "factual-chat"], "methods": ["sft", "sft-word", "rl"], "seeds": [0], "device": "cpu",
        "train": {"steps": 2, "prompts_per_step": 4, "learning_rate": 1e-4, "train_examples": 16,
                  "rl": {"num_generations": 2, "max_completion_length": 4}},
        "sweep": {"learning_rates": {"sft": [1e-4], "sft-word": [1e-4], "rl": [1e-4]}, "levels": 2},
        "analysis": {"n_examples": 8, "top_k": 4, "n_random": 2, "batch_size": 8, "target_goal": 0.5},
        "eval": {"target_n": 16, "probe_n": 8, "max_new_tokens": 4, "kl_samples": 4, "kl_max_new_tokens": 4,
                 "batch_size": 16},
    }
    path = root / "three-arms.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = run_experiment(path, root / "run", quiet=True, jobs=1)
    return out, json.loads((out / "results.json").read_text())


def test_each_sft_arm_records_its_label_nll_and_the_word_is_off_policy(run):
    _, results = run
    nll = results["label_nll"]
    assert set(nll) == {"sft", "sft-word"}  # RL trains on no label
    assert nll["sft"]["n_examples"] == nll["sft-word"]["n_examples"] == 16
    # the base gives the letter far more mass than the word it was never asked for (about 2 vs 16 nats)
    assert 0 < nll["sft"]["nats"] < 5 < nll["sft-word"]["nats"]


def test_the_word_arm_trains_on_words_and_is_measured_like_the_others(run):
    out, results = run
    claim = json.loads((out / "train/sft-word/lr0.0001/seed0/train_config.json").read_text())
    assert claim["method"] == "sft-word"
    methods = {m["method"] for m in results["measurements"]}
    assert methods == {"sft", "sft-word", "rl"}
    final = [m for m in results["measurements"] if m["method"] == "sft-word" and m["step"] == 2]
    assert len(final) == 1 and set(final[0]["probes"]) == {"factual", "factual-chat"}


def test_every_run_carries_a_collapse_flag_against_chance(run):
    _, results = run
    sweep = results["sweep"]
    assert sweep["chance"] == 0.25
    finals = {(r["method"], r["seed"]): r for r in sweep["run_finals"]}
    assert set(finals) == {("sft", 0), ("sft-word", 0), ("rl", 0)}
    for row in finals.values():  # judged on the selection split, like every other choice (never on test)
        assert row["collapsed"] == (row["final_selection_accuracy"] <= 0.25)
        assert 0 <= row["final_target_accuracy"] <= 1


def test_no_interval_in_results_has_zero_width(run):
    """Seeds that agree exactly give no interval (lo, hi null), never [x, x] (docs/methods.md §9)."""
    _, results = run
    stats, zero_width = [], []

    def walk(node, path):
        if isinstance(node, dict):
            if {"mean", "lo", "hi"} <= set(node):
                stats.append(path)
                if node["lo"] is not None and node["lo"] == node["hi"]:
                    zero_width.append(path)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(results, "")
    assert len(stats) > 100 and zero_width == []
    assert any(node.get("spread") == "none" for node in results["aggregate"]["endpoints"]["sft"].values()
               if isinstance(node, dict))  # one seed: every endpoint statistic is one value, no interval

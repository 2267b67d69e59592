"""Experiment config: defaults resolve, and every bad value is named by its path in the file."""

from __future__ import annotations

import pytest
import yaml

from circuitdrift.engine.config import resolved_yaml
from circuitdrift.errors import InputError
from circuitdrift.pipeline.config import load_config, parse_config, probe_label

MINIMAL = {"base_model": "organism", "target_task": "science-qa", "probes": ["ioi", "factual"]}


def with_(**changes):
    data = {**MINIMAL}
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section] = {**data.get(section, {}), field: value}
        else:
            data[section] = value
    return data


def test_defaults_resolve_and_round_trip():
    config = parse_config(MINIMAL)
    assert config.methods == ["sft", "rl"] and config.seeds == [0, 1, 2]
    assert config.steps()[0] == 0 and config.steps()[-1] == config.train.steps
    again = parse_config(yaml.safe_load(resolved_yaml(config)))
    assert again == config
    assert config.train_config(7).seed == 7 and config.train_config(7).steps == config.train.steps


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_(analysis__top_kk=3), "cfg.yaml: analysis.top_kk: unknown key"),
        (with_(colour="red"), "cfg.yaml: colour: unknown key"),
        (with_(analysis__tau=-0.5), "cfg.yaml: analysis.tau: Input should be greater than or equal to 0"),
        (with_(analysis__top_k="many"), "cfg.yaml: analysis.top_k: Input should be a valid integer"),
        (with_(train={"steps": 10, "checkpoint_steps": [20]}), "cfg.yaml: train: checkpoint step 20 is outside"),
        (with_(seeds=[1, 1]), "cfg.yaml: seeds: seeds must be distinct"),
        (with_(methods=["sft", "dpo"]),
         "cfg.yaml: methods.1: Input should be 'sft', 'sft-word', 'rl' or 'sft-preserve'"),
        (with_(methods=["sft", "sft-preserve"]), "cfg.yaml: (top level): methods: sft-preserve with preserve.heads "
                                                  "'dcv' takes its heads from the SFT and RL runs"),
        (with_(preserve__lam=-1), "cfg.yaml: preserve.lam: Input should be greater than or equal to 0"),
        (with_(preserve__heads="random"), "cfg.yaml: preserve.heads: Input should be 'dcv' or 'circuit'"),
        (with_(eval__kl_top_p=1.5), "cfg.yaml: eval.kl_top_p"),
        ({"target_task": "x", "probes": ["a"]}, "cfg.yaml: base_model: Field required"),
        (with_(probes=["../../etc"]), "probe name"),
        (with_(analysis__exact_cmap_steps=[7]), "exact_cmap_steps: step 7 is not a checkpoint step"),
        (with_(analysis__metric="accuracy"), "cfg.yaml: analysis: metric 'accuracy' has no gradient: "
                                             "rediscovery_method 'attribution'"),
    ],
)
def test_bad_values_are_named_by_path(data, message):
    with pytest.raises(InputError) as info:
        parse_config(data, "cfg.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_three_arms_resolve_with_their_preserve_settings():
    config = parse_config(with_(methods=["sft", "rl", "sft-preserve"],
                                sweep={"learning_rates": {"sft-preserve": [1e-4, 3e-5]}, "allow_unequal_grids": True}))
    assert config.preserve.lam == 0.01 and config.preserve.heads == "dcv" and config.preserve.top_k == 4
    assert [run for run in config.runs() if run[0] == "sft-preserve"] == [
        ("sft-preserve", lr, s) for lr in (3e-5, 1e-4) for s in (0, 1, 2)]
    alone = parse_config(with_(methods=["sft-preserve"], preserve__heads="circuit"))
    assert alone.methods == ["sft-preserve"]
    assert parse_config(yaml.safe_load(resolved_yaml(config))) == config


def test_yaml_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: organism\nprobes: [ioi\ntarget_task: x\n")
    with pytest.raises(InputError, match=r"bad.yaml:\d+: "):
        load_config(bad)
    with pytest.raises(InputError, match="no such file"):
        load_config(tmp_path / "absent.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_config(listing)


def test_yaml_is_loaded_safely(tmp_path):
    """A python-object tag would run code under yaml.load; safe_load refuses it."""
    evil = tmp_path / "evil.yaml"
    evil.write_text("base_model: !!python/object/apply:os.system ['touch " + str(tmp_path / "owned") + "']\n")
    with pytest.raises(InputError):
        load_config(evil)
    assert not (tmp_path / "owned").exists()


def test_probe_labels():
    assert probe_label("ioi") == "ioi"
    assert probe_label("/data/my-probe.jsonl") == "my-probe"
    with pytest.raises(ValueError):
        probe_label("a b")


def test_target_task_list_gives_one_experiment_per_task():
    data = with_(target_task=["science-qa", "science-name"], name="demo")
    config = parse_config(data)
    assert config.target_tasks() == ["science-qa", "science-name"]
    name = config.for_task("science-name")
    assert name.target_task == "science-name" and name.name == "demo-science-name"
    single = parse_config({**data, "target_task": ["science-qa"]})
    assert single.target_task == "science-qa" and single.for_task("science-qa") is single
    with pytest.raises(InputError, match="target_task: .*distinct"):
        parse_config({**data, "target_task": ["science-qa", "science-qa"]})
    with pytest.raises(InputError, match="target_task"):
        parse_config({**data, "target_task": []})


def test_unequal_learning_rate_grids_are_refused_unless_allowed():
    grids = {"learning_rates": {"sft": [1e-5, 3e-5, 1e-4], "rl": [3e-5, 5e-5, 1e-4]}}
    with pytest.raises(InputError) as info:
        parse_config(with_(sweep=grids), "cfg.yaml")
    message = str(info.value)
    assert "sweep.learning_rates: sft [1e-05, 3e-05, 0.0001] and rl [3e-05, 5e-05, 0.0001] differ" in message
    assert "\n" not in message
    # a method left out of the sweep trains at train.learning_rate: a grid of one, also unequal
    with pytest.raises(InputError):
        parse_config(with_(sweep={"learning_rates": {"sft": [1e-5, 1e-4]}}), "cfg.yaml")
    allowed = parse_config(with_(sweep={**grids, "allow_unequal_grids": True}))
    assert allowed.learning_rates("rl") == [3e-5, 5e-5, 1e-4]
    same = parse_config(with_(sweep={"learning_rates": {"sft": [1e-4, 3e-5], "rl": [3e-5, 1e-4]}}))
    assert same.learning_rates("sft") == same.learning_rates("rl") == [3e-5, 1e-4]


def test_the_shipped_configs_load():
    from pathlib import Path

    from circuitdrift.pipeline.config import load_config

    for path in sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml")):
        if "transfer" in path.name:  # the transfer experiment has its own config (transfer/config.py)
            continue
        load_config(path)

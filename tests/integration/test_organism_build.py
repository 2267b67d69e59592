"""The organism recipe end to end at toy size (seconds), so that the recipe cannot rot."""

from __future__ import annotations

import json

import pytest
import torch

from circuitdrift.cli import main
from circuitdrift.models.load import load_model
from circuitdrift.organism.build import build_organism, post_training_task, pretrain
from circuitdrift.organism.card import PROBES, SHIPPED_FILES, verify_files
from circuitdrift.organism.recipe import FULL, reduced
from circuitdrift.organism.science import science_qa_task
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.tasks.registry import resolve_task


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("organism") / "reduced"
    card = build_organism(out, seed=0, recipe=reduced(), progress=False)
    return out, card


def test_build_writes_a_loadable_organism_with_a_measured_card(built):
    out, card = built
    for name in (*SHIPPED_FILES, "card.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "card.json").read_text()) == card
    assert verify_files(out) == []
    model, tokenizer = load_model(out, device="cpu")
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.num_key_value_heads == 2
    assert card["architecture"]["parameters"] == sum(p.numel() for p in model.parameters())
    table = card["capabilities"]
    assert set(table["probes"]) == set(PROBES)
    for row in table["probes"].values():
        assert 0.0 <= row["accuracy"] <= 1.0 and row["n_test"] > 0
        assert len(row["circuit"]) == row["circuit_size"] >= 1
        if row["accuracy"] > 0:
            assert row["faithfulness"] >= 0.0 and row["random_faithfulness"] >= 0.0
        else:
            assert row["faithfulness"] is None
    assert 0.0 <= table["target"]["science-qa"]["accuracy"] <= 1.0
    task = science_qa_task("test", 2)
    ids = tokenizer(task.examples[0].clean, add_special_tokens=False, return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_card_check_catches_a_changed_file(built, tmp_path):
    out, _ = built
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.iterdir():
        copy.joinpath(path.name).write_bytes(path.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (copy / "config.json").write_text(json.dumps(config))
    problems = verify_files(copy)
    assert any("config.json" in p and "sha256" in p for p in problems)
    assert any("num_hidden_layers" in p for p in problems)


def test_pretraining_is_deterministic_given_the_seed(tmp_path):
    tokenizer = organism_tokenizer()
    recipe = reduced()
    first = pretrain(recipe, 0, tokenizer, tmp_path / "a", progress=False).state_dict()
    again = pretrain(recipe, 0, tokenizer, tmp_path / "b", progress=False).state_dict()
    other = pretrain(recipe, 1, tokenizer, tmp_path / "c", progress=False).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_cli_info_and_bad_out(built, tmp_path, capsys):
    out, card = built
    assert main(["organism", "info", "--model", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Qwen2ForCausalLM" in printed and "science-qa" in printed
    assert main(["organism", "info", "--model", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == card
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert main(["organism", "build", "--out", str(not_a_folder), "--reduced"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["organism", "info", "--model", str(tmp_path / "missing")]) == 2


def test_cli_lists_builtin_tasks(capsys):
    assert main(["tasks", "list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"ioi", "greater-than", "induction", "factual", "science-qa"} <= set(names)


def test_build_post_trains_the_pretrained_model(built, tmp_path):
    out, card = built
    assert card["recipe"]["post_training"]["steps"] == reduced().post_training.steps
    pretrained = pretrain(reduced(), 0, organism_tokenizer(), tmp_path / "p", progress=False).state_dict()
    shipped = load_model(out, device="cpu")[0].state_dict()
    assert any(not torch.equal(pretrained[k], shipped[k]) for k in pretrained)  # the SFT stage moved the weights


def test_post_training_asks_about_the_pretraining_half_only():
    tokenizer = organism_tokenizer()
    task = post_training_task(FULL.post_training, tokenizer)
    parts = [resolve_task(name, split="pretrain", tokenizer=tokenizer) for name in FULL.post_training.tasks]
    assert len(task) == sum(len(p) for p in parts) == 288 * len(parts)  # 48 substances x 3 kinds x 2 phrasings
    prompts = {ex.clean for ex in task.examples}
    for name in FULL.post_training.tasks:
        for split in ("train", "validation", "test"):  # what fine-tuning trains on and is measured on
            assert prompts.isdisjoint(ex.clean for ex in resolve_task(name, split=split, tokenizer=tokenizer).examples)


def test_build_from_a_pretrained_folder_post_trains_only(built, tmp_path, capsys):
    out, _ = built
    again = build_organism(tmp_path / "again", seed=0, recipe=reduced(), progress=False, pretrained=out)
    assert again["build"]["pretrained_from"]["sha256"] == json.loads((out / "card.json").read_text())[
        "files"]["model.safetensors"]["sha256"]
    assert again["files"]["model.safetensors"]["sha256"] != again["build"]["pretrained_from"]["sha256"]
    target = tmp_path / "never"
    assert main(["organism", "build", "--out", str(target), "--reduced", "--pretrained", str(tmp_path)]) == 2
    assert "no model.safetensors" in capsys.readouterr().err and not target.exists()

"""DCM on a model whose answer can only move through one head: the mask selects that head and no other."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.circuits.dcm import dcm_masks
from circuitdrift.circuits.forward import run_logits
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout
from circuitdrift.tasks.base import Example, Task, collate, encode
from tests.conftest import make_model, self_consistent_task, toy_examples

KEEP = (1, 2)


def single_path_model(tokenizer):
    """Every head's output projection zeroed except KEEP's (scaled up), and sharp logits: information moves
    between positions only through KEEP, and moving it changes the answer's probability a lot."""
    model = make_model("qwen2", tokenizer, n_layers=3, n_heads=4, n_kv_heads=2)
    layout = HeadLayout.of(model)
    d = layout.head_dim
    with torch.no_grad():
        for layer, proj in enumerate(layout.out_projs):
            for head in range(layout.n_heads):
                proj.weight[:, head * d:(head + 1) * d] *= 5.0 if (layer, head) == KEEP else 0.0
        model.model.norm.weight *= 30.0
    return model


def greedy(model, tokenizer, prompts: list[str]) -> list[str]:
    task = Task("prompts", [Example(p, p, " w0") for p in prompts])
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id).to(model.device)
    with torch.no_grad():
        logits = run_logits(model, batch.clean, batch)
    rows = torch.arange(batch.size, device=model.device)
    return [tokenizer.decode([i]) for i in logits[rows, batch.last_prompt_pos].argmax(-1).tolist()]


def test_dcm_selects_the_one_head_that_carries_the_answer(word_tokenizer):
    model = single_path_model(word_tokenizer)
    # counterfactuals that change an earlier word (not the last one) and, through KEEP, the model's answer
    pairs = [e for e in toy_examples(200, 1) if e.clean.split()[-1] == e.corrupt.split()[-1]]
    clean = greedy(model, word_tokenizer, [e.clean for e in pairs])
    corrupt = greedy(model, word_tokenizer, [e.corrupt for e in pairs])
    task = Task("flip", [Example(e.clean, e.corrupt, a, b) for e, a, b in zip(pairs, clean, corrupt, strict=True)
                         if a != b][:16])
    result = dcm_masks(model, word_tokenizer, task)  # desideratum: each example's counter-answer
    assert result.circuit == [KEEP], result.masks.scores
    others = [float(v) for (layer, head), v in zip(
        [(layer, head) for layer in range(3) for head in range(4)], result.masks.scores.flatten(), strict=True)
        if (layer, head) != KEEP]
    assert result.masks.scores[KEEP] > 0.9 and max(others) < 0.1
    assert result.losses[-1] < result.losses[0] and result.masks.meta["desideratum"] == "counter-answer"


def flip_task(model, tokenizer) -> Task:
    """Examples whose counterfactual changes an earlier word (not the last one) and, through KEEP, the answer."""
    pairs = [e for e in toy_examples(200, 1) if e.clean.split()[-1] == e.corrupt.split()[-1]]
    clean = greedy(model, tokenizer, [e.clean for e in pairs])
    corrupt = greedy(model, tokenizer, [e.corrupt for e in pairs])
    return Task("flip", [Example(e.clean, e.corrupt, a, b) for e, a, b in zip(pairs, clean, corrupt, strict=True)
                         if a != b][:16])


def test_dcm_is_a_circuit_method_of_find_circuit_and_the_run_config(word_tokenizer):
    from circuitdrift.circuits.discovery import CircuitSettings
    from circuitdrift.pipeline.config import parse_config

    model = single_path_model(word_tokenizer)
    scores, circuit = CircuitSettings(method="dcm", top_k=3).find(model, word_tokenizer, flip_task(model,
                                                                                                  word_tokenizer))
    assert circuit == [KEEP] and scores.meta["method"] == "dcm" and float(scores.scores[KEEP]) < -0.9
    config = parse_config({"base_model": "organism", "target_task": "science-qa", "probes": ["ioi"],
                           "analysis": {"circuit_method": "dcm"}})
    assert config.analysis.circuit("dcm").method == "dcm"
    with pytest.raises(InputError, match="DCM's circuit is the heads with mask > 0.5"):
        CircuitSettings(method="dcm", threshold=-0.1).find(model, word_tokenizer, flip_task(model, word_tokenizer))


def test_bad_dcm_input_is_one_line(word_tokenizer):
    model = make_model("qwen2", word_tokenizer)
    task = self_consistent_task(model, word_tokenizer, n=3)
    with pytest.raises(InputError, match="2 targets for 3 examples"):
        dcm_masks(model, word_tokenizer, task, targets=[" w1", " w2"])
    with pytest.raises(InputError, match="steps must be"):
        dcm_masks(model, word_tokenizer, task, steps=0)
    no_counter = Task("t", [Example(e.clean, e.corrupt, e.answer) for e in task.examples])
    with pytest.raises(InputError, match="example 0 has no counter_answer"):
        dcm_masks(model, word_tokenizer, no_counter)


def test_dcm_command_writes_a_circuit_file_that_faithfulness_reads(word_tokenizer, tmp_path, capsys, device):
    import json

    from circuitdrift.cli import main

    model = single_path_model(word_tokenizer)
    model.save_pretrained(tmp_path / "model")
    word_tokenizer.save_pretrained(tmp_path / "model")
    pairs = [e for e in toy_examples(200, 1) if e.clean.split()[-1] == e.corrupt.split()[-1]]
    clean = greedy(model, word_tokenizer, [e.clean for e in pairs])
    corrupt = greedy(model, word_tokenizer, [e.corrupt for e in pairs])
    rows = [{"clean": e.clean, "corrupt": e.corrupt, "answer": a, "counter_answer": b}
            for e, a, b in zip(pairs, clean, corrupt, strict=True) if a != b][:16]
    (tmp_path / "flip.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "dcm.json"
    assert main(["dcm", str(tmp_path / "model"), str(tmp_path / "flip.jsonl"), "--device", device,
                 "--out", str(out)]) == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["circuit"]] == ["L1.H2"] and data["masks"][1][2] > 0.9
    assert data["scores"][1][2] == -data["masks"][1][2]  # the heads schema: most negative = most important
    assert main(["faithfulness", str(tmp_path / "model"), str(tmp_path / "flip.jsonl"), "--circuit", str(out),
                 "--n-random", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["circuit_size"] == 1
    assert main(["heads", str(tmp_path / "model"), str(tmp_path / "flip.jsonl"), "--method", "dcm", "--top-k", "3",
                 "--device", device, "--out", str(tmp_path / "heads.json")]) == 0, capsys.readouterr().err
    heads = json.loads((tmp_path / "heads.json").read_text())
    assert [c["name"] for c in heads["circuit"]] == ["L1.H2"] and heads["masks"][1][2] > 0.9
    assert heads["method"] == "dcm" and heads["timing"]["total_s"] > 0
    (tmp_path / "targets.json").write_text('{"a": 1}')
    code = main(["dcm", str(tmp_path / "model"), str(tmp_path / "flip.jsonl"), "--targets",
                 str(tmp_path / "targets.json")])
    assert code == 2 and "expected a JSON list of strings" in capsys.readouterr().err

"""--device auto-map (device_map="auto"): loading through Accelerate's dispatch gives the same head scores.

On this CPU machine Accelerate puts every layer on the CPU, so what is checked is the loading path and that
the scores equal a plain load; layers on several GPUs are not exercised here (docs/real-models.md).
"""

import json

import pytest
import torch

from circuitdrift.circuits.crossmodel import cross_model_patch
from circuitdrift.circuits.scoring import head_scores
from circuitdrift.cli import main
from circuitdrift.models.load import load_model
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tokenizer = toy_tokenizer()
    path = tmp_path_factory.mktemp("mapped") / "model"
    toy_model(tokenizer, seed=2).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_auto_map_loads_through_accelerate_and_scores_the_same(folder):
    plain, tokenizer = load_model(folder, device="cpu")
    mapped, _ = load_model(folder, device="auto-map")
    task = toy_task(tokenizer, n=6)
    for method in ("exact", "attribution"):
        a = head_scores(plain, tokenizer, task, method=method, batch_size=4)
        b = head_scores(mapped, tokenizer, task, method=method, batch_size=4)
        torch.testing.assert_close(a.scores, b.scores, atol=1e-6, rtol=0)
    torch.testing.assert_close(cross_model_patch(plain, plain, tokenizer, task).scores,
                               cross_model_patch(mapped, plain, tokenizer, task).scores, atol=1e-6, rtol=0)


def test_heads_cli_takes_auto_map(folder, tmp_path, capsys):
    rows = [{"clean": ex.clean, "corrupt": ex.corrupt, "answer": ex.answer}
            for ex in toy_task(toy_tokenizer(), n=4).examples]
    (tmp_path / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    outs = []
    for device in ("cpu", "auto-map"):
        assert main(["heads", str(folder), str(tmp_path / "task.jsonl"), "--device", device, "--top-k", "3",
                     "--out", str(tmp_path / f"{device}.json")]) == 0
        outs.append(json.loads((tmp_path / f"{device}.json").read_text())["scores"])
    torch.testing.assert_close(torch.tensor(outs[0]), torch.tensor(outs[1]), atol=1e-6, rtol=0)

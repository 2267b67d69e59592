"""The CLI end to end on local folders: JSON shapes, identities, and one-line errors with exit code 2."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from circuitdrift.cli import main
from tests.conftest import make_model, self_consistent_task
from tests.unit.test_crossmodel import plant


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, word_tokenizer):
    root = tmp_path_factory.mktemp("cli")
    base = make_model("qwen2", word_tokenizer)
    for name, model in (("base", base), ("tuned", plant(copy.deepcopy(base), 1, 2))):
        model.save_pretrained(root / name)
        word_tokenizer.save_pretrained(root / name)
    rows = [{"clean": e.clean, "corrupt": e.corrupt, "answer": e.answer, "counter_answer": e.counter_answer}
            for e in self_consistent_task(base, word_tokenizer, n=6).examples]
    (root / "task.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_heads_writes_the_documented_json(workspace, capsys, device):
    out = workspace / "heads.json"
    code, _, err = run_cli(["heads", workspace / "base", workspace / "task.jsonl", "--top-k", "3",
                            "--device", device, "--out", out], capsys)
    assert code == 0, err
    data = json.loads(out.read_text())
    for key in ("model", "task", "method", "metric", "ablation", "n_layers", "n_heads", "scores", "circuit", "timing"):
        assert key in data
    assert (data["n_layers"], data["n_heads"]) == (3, 4)
    assert len(data["scores"]) == 3 and all(len(row) == 4 for row in data["scores"])
    assert [c["score"] for c in data["circuit"]] == sorted(c["score"] for c in data["circuit"])
    assert len(data["circuit"]) == 3 and data["timing"]["forward_s"] > 0
    # the circuit file feeds `faithfulness`
    code, stdout, err = run_cli(["faithfulness", workspace / "base", workspace / "task.jsonl", "--circuit", out,
                                 "--n-random", "3"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    assert code == 0 and result["circuit_size"] == 3 and len(result["random_faithfulness_all"]) == 3


def test_default_circuit_size_fits_a_model_with_fewer_than_20_heads(workspace, capsys):
    code, stdout, err = run_cli(["heads", workspace / "base", workspace / "task.jsonl", "--method", "attribution"],
                                capsys)
    assert code == 0, err
    assert len(json.loads(stdout)["circuit"]) == 12  # min(20, 3 layers x 4 heads)


def test_heads_prune_gives_the_kept_heads_and_the_removal_order(workspace, capsys):
    code, stdout, err = run_cli(["heads", workspace / "base", workspace / "task.jsonl", "--method", "prune",
                                 "--metric", "logprob", "--ablation", "mean", "--top-k", "5"], capsys)
    assert code == 0, err
    data = json.loads(stdout)
    circuit = {c["name"] for c in data["circuit"]}
    assert len(circuit) == 5 and len(data["removal_order"]) == 12 - 5
    assert not circuit & set(data["removal_order"])
    assert data["method"] == "prune" and data["full_metric"] != data["circuit_metric"]


def test_cmap_of_a_model_with_itself_is_zero(workspace, capsys):
    code, stdout, _ = run_cli(["cmap", workspace / "base", workspace / "base", workspace / "task.jsonl",
                               "--method", "attribution"], capsys)
    assert code == 0
    assert all(v == 0 for row in json.loads(stdout)["delta"] for v in row)


def test_dcv_writes_v_d_and_preservation(workspace, capsys):
    out = workspace / "dcv.json"
    code, _, err = run_cli(["dcv", workspace / "base", workspace / "task.jsonl", "--sft", workspace / "tuned",
                            "--rl", workspace / "base", "--top-k", "4", "--tau", "0", "--out", out], capsys)
    assert code == 0, err
    data = json.loads(out.read_text())
    for key in ("V", "delta_sft", "delta_rl", "vulnerable", "D", "preservation"):
        assert key in data
    assert data["preservation"]["rl"] == 1.0  # RL model is the base itself
    assert all(v == 0 for row in data["delta_rl"] for v in row)
    ratios = [v for row in data["V_relative"] for v in row if v is not None]  # V / |s_h|: base circuit heads only
    assert data["threshold"] == "relative" and 0 < len(ratios) <= 4
    assert all(v["in_base_circuit"] and v["V_relative"] > 0 for v in data["vulnerable"])
    back = data["reverse"]  # CMAP the other way: the base's head patched into each fine-tuned model
    assert all(v == 0 for row in back["delta_rl"] for v in row)
    assert any(v != 0 for row in back["delta_sft"] for v in row) and back["delta_sft"] != data["delta_sft"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["heads", "{root}/absent", "{root}/task.jsonl"], "no such folder"),
        (["heads", "{root}", "{root}/task.jsonl"], "not a model folder"),
        (["heads", "{root}/base", "{root}/absent.jsonl"], "no such file"),
        (["heads", "{root}/base", "{root}/task.jsonl", "--top-k", "99"], "--top-k 99"),
        (["heads", "{root}/base", "{root}/task.jsonl", "--device", "cuda"], "no CUDA GPU"),
        (["heads", "{root}/base", "{root}/task.jsonl", "--top-k", "3", "--out", "{root}/task.jsonl/x.json"],
         "cannot write"),
        (["dcv", "{root}/base", "{root}/task.jsonl", "--sft", "{root}/base", "--rl", "{root}/base", "--tau", "-1"],
         "--tau -1"),
        (["dcv", "{root}/base", "{root}/task.jsonl", "--sft", "{root}/base", "--rl", "{root}/base", "--threshold",
          "percent"], "'percent' is not one of 'relative', 'absolute'"),
        (["faithfulness", "{root}/base", "{root}/task.jsonl", "--circuit", "{root}/task.jsonl"], "malformed JSON"),
        (["heads", "{root}/base", "{root}/task.jsonl", "--method", "prune", "--top-k", "3", "--threshold", "-0.1"],
         "pruning stops at a circuit size"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(workspace, capsys, args, message):
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    code, stdout, err = run_cli([a.format(root=workspace) for a in args], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_incompatible_models_via_cli(workspace, capsys, word_tokenizer):
    other = make_model("qwen2", word_tokenizer, n_layers=2)
    other.save_pretrained(workspace / "other")
    word_tokenizer.save_pretrained(workspace / "other")
    code, _, err = run_cli(["cmap", workspace / "base", workspace / "other", workspace / "task.jsonl"], capsys)
    assert code == 2 and "n_layers: base has 3, fine-tuned has 2" in err


def test_real_entry_point_exit_code_and_debug_traceback(workspace):
    cmd = [sys.executable, "-m", "circuitdrift", "heads", str(workspace / "absent"), str(workspace / "task.jsonl")]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == f"error: model '{workspace / 'absent'}': no such folder"
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_public_api_names_resolve():
    import circuitdrift

    for name in circuitdrift.__all__:
        assert getattr(circuitdrift, name) is not None, name
    with pytest.raises(AttributeError):
        circuitdrift.no_such_thing  # noqa: B018

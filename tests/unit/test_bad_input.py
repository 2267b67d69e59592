"""Bad input, through the CLI and the Python API: one clear line, exit code 2, nothing half-written.

The table below is the list in docs/reliability.md; each row is checked both ways.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from circuitdrift.cli import main
from circuitdrift.errors import InputError
from tests.conftest import make_model, write_tiny_experiment


@pytest.fixture(scope="module")
def ws(tmp_path_factory, word_tokenizer):
    root = tmp_path_factory.mktemp("bad")
    write_tiny_experiment(root)
    from transformers import AutoConfig, AutoModelForCausalLM

    opt = AutoModelForCausalLM.from_config(AutoConfig.for_model(
        "opt", vocab_size=len(word_tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ffn_dim=32, word_embed_proj_dim=16))
    opt.save_pretrained(root / "opt")
    word_tokenizer.save_pretrained(root / "opt")
    from circuitdrift.models.wordlevel import build_word_tokenizer
    from tests.conftest import WORDS

    other_tokenizer = build_word_tokenizer([*WORDS, "extra", "words"])
    other_vocab = make_model("qwen2", other_tokenizer, n_layers=2)
    other_vocab.save_pretrained(root / "othervocab")
    other_tokenizer.save_pretrained(root / "othervocab")
    narrow = make_model("qwen2", word_tokenizer, n_layers=1)
    narrow.save_pretrained(root / "narrow")
    word_tokenizer.save_pretrained(root / "narrow")
    files = {
        "empty.jsonl": "",
        "malformed.jsonl": '{"clean": "w1", "corrupt": "w2", "answer": " w3"}\n{"clean": \n',
        "nokey.jsonl": '{"clean": "w1", "answer": " w3"}\n',
        "mismatch.jsonl": '{"clean": "w1 w2", "corrupt": "w1", "answer": " w3"}\n',
        "noanswer.jsonl": '{"clean": "w1", "corrupt": "w2", "answer": ""}\n',
    }
    for name, text in files.items():
        (root / name).write_text(text)
    base_cfg = yaml.safe_load((root / "experiment.yaml").read_text())
    for name, change in {
        "unknown.yaml": {"analysis": {**base_cfg["analysis"], "top_kk": 3}},
        "wrongtype.yaml": {"seeds": "zero"},
        "topk.yaml": {"analysis": {**base_cfg["analysis"], "top_k": 99}},
        "tau.yaml": {"analysis": {**base_cfg["analysis"], "tau": -0.1}},
        "steps.yaml": {"train": {**base_cfg["train"], "checkpoint_steps": [50]}},
        "escape.yaml": {"name": "../../escape"},
    }.items():
        (root / name).write_text(yaml.safe_dump({**base_cfg, **change}))
    return root


def cli(args, capsys):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


CASES = [
    # (CLI arguments, message in the one line)
    (["eval", "{r}/absent", "--task", "{r}/target.jsonl", "--out", "{r}/e.json", "--answer-tokns", "4"],
     "No such option: --answer-tokns"),
    (["heads", "{r}/absent", "{r}/target.jsonl"], "no such folder"),
    (["heads", "{r}/probe-a.jsonl", "{r}/target.jsonl"], "no such folder"),
    (["heads", "{r}", "{r}/target.jsonl"], "not a model folder"),
    (["heads", "no-such-org/no-such-model", "{r}/target.jsonl"], "could not load"),
    (["heads", "{r}/opt", "{r}/probe-a.jsonl"], "architecture 'opt' is not supported"),
    (["cmap", "{r}/base", "{r}/narrow", "{r}/probe-a.jsonl"], "n_layers: base has 2, fine-tuned has 1"),
    (["cmap", "{r}/base", "{r}/othervocab", "{r}/probe-a.jsonl"], "tokenizers differ"),
    (["heads", "{r}/base", "{r}/absent.jsonl"], "no such file"),
    (["heads", "{r}/base", "{r}/empty.jsonl"], "is empty"),
    (["heads", "{r}/base", "{r}/malformed.jsonl"], "malformed.jsonl:2: malformed JSON"),
    (["heads", "{r}/base", "{r}/nokey.jsonl"], "nokey.jsonl:1: missing key 'corrupt'"),
    (["heads", "{r}/base", "{r}/mismatch.jsonl", "--top-k", "2"],
     "example 0: clean prompt has 2 tokens but the counterfactual has 1"),
    (["heads", "{r}/base", "{r}/noanswer.jsonl"], "noanswer.jsonl:1: empty answer"),
    (["heads", "{r}/base", "{r}/probe-a.jsonl", "--top-k", "99"], "--top-k 99"),
    (["heads", "{r}/base", "{r}/probe-a.jsonl", "--top-k", "2", "--out", "{r}/empty.jsonl/x.json"], "cannot write"),
    (["run", "{r}/unknown.yaml", "--out", "{r}/runs/u"], "analysis.top_kk: unknown key"),
    (["run", "{r}/wrongtype.yaml", "--out", "{r}/runs/w"], "seeds: Input should be a valid list"),
    (["run", "{r}/topk.yaml", "--out", "{r}/runs/t"], "analysis.top_k: 99 exceeds the number of heads"),
    (["run", "{r}/tau.yaml", "--out", "{r}/runs/tau"], "analysis.tau"),
    (["run", "{r}/steps.yaml", "--out", "{r}/runs/s"], "checkpoint step 50 is outside"),
    (["run", "{r}/escape.yaml"], "name: use letters, digits"),
    (["run", "{r}/absent.yaml"], "no such file"),
    (["run", "{r}/experiment.yaml", "--out", "{r}/empty.jsonl/run"], "--out"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[c[1][:40] for c in CASES])
def test_cli_one_line_exit_2(ws, capsys, args, message):
    code, err = cli([a.format(r=ws) for a in args], capsys)
    assert code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_nothing_half_written_on_bad_config(ws, capsys):
    """Config problems are found before the run folder is created."""
    for name in ("u", "t", "w", "tau", "s"):
        assert not (ws / "runs" / name).exists()
    assert not list(ws.rglob("*.tmp"))


def test_cuda_without_gpu(ws, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = cli(["heads", ws / "base", ws / "probe-a.jsonl", "--device", "cuda"], capsys)
    assert code == 2 and "no CUDA GPU" in err


def test_python_api_raises_the_same_errors(ws, word_tokenizer, device):
    from circuitdrift import cross_model_patch, head_scores, load_model, load_task_file, resolve_task
    from circuitdrift.pipeline.run import run_experiment

    with pytest.raises(InputError, match="no such folder"):
        load_model(str(ws / "absent"))
    with pytest.raises(InputError, match="not supported"):
        load_model(str(ws / "opt"))
    with pytest.raises(InputError, match="malformed.jsonl:2"):
        load_task_file(ws / "malformed.jsonl")
    with pytest.raises(InputError, match="missing key 'corrupt'"):
        resolve_task(str(ws / "nokey.jsonl"))
    base, tok = load_model(str(ws / "base"), device=device)
    with pytest.raises(InputError, match="example 0"):
        head_scores(base, tok, load_task_file(ws / "mismatch.jsonl"))
    narrow, _ = load_model(str(ws / "narrow"), device=device)
    with pytest.raises(InputError, match="n_layers"):
        cross_model_patch(base, narrow, tok, load_task_file(ws / "probe-a.jsonl"))
    other, other_tok = load_model(str(ws / "othervocab"), device=device)
    with pytest.raises(InputError, match="tokenizers differ"):
        cross_model_patch(base, other, tok, load_task_file(ws / "probe-a.jsonl"), finetuned_tokenizer=other_tok)
    with pytest.raises(InputError, match="analysis.top_k: 99"):
        run_experiment(ws / "topk.yaml", ws / "runs" / "api-t", quiet=True)
    with pytest.raises(InputError, match="unknown key"):
        run_experiment(ws / "unknown.yaml", ws / "runs" / "api-u", quiet=True)


def test_debug_shows_traceback_and_runtime_failures_exit_1(ws, capsys, monkeypatch):
    code, err = cli(["--debug", "heads", ws / "absent", ws / "probe-a.jsonl"], capsys)
    assert code == 2 and "Traceback" in err

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("circuitdrift.circuits.commands.heads_result", broken)
    code, err = cli(["heads", ws / "base", ws / "probe-a.jsonl", "--top-k", "2"], capsys)
    assert code == 1 and err.strip() == "error: RuntimeError: disk on fire"


def test_remote_code_is_not_executed_unless_asked(tmp_path, word_tokenizer):
    """A model folder whose config points at its own Python code: loading must not import it."""
    model = make_model("qwen2", word_tokenizer)
    model.save_pretrained(tmp_path / "remote")
    config = json.loads((tmp_path / "remote" / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    config["model_type"] = "evil"
    (tmp_path / "remote" / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "owned"
    (tmp_path / "remote" / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    from circuitdrift.models.load import load_model

    with pytest.raises(InputError):
        load_model(str(tmp_path / "remote"), device="cpu")
    assert not marker.exists()


def test_package_builds_no_shell_commands_and_never_unpickles():
    """A source scan: no shell, eval/exec, pickle or unsafe YAML anywhere in the package."""
    from pathlib import Path

    import circuitdrift

    root = Path(circuitdrift.__file__).parent
    banned = ("shell=True", "os.system(", "os.popen(", "pickle.load", "yaml.load(", "exec(", "eval(\"")
    for path in root.rglob("*.py"):
        text = path.read_text()
        for token in banned:
            assert token not in text, f"{path}: {token}"
        if "torch.load(" in text:
            assert "weights_only=True" in text, f"{path}: torch.load without weights_only=True"



"""`circuitdrift steer vector|generate|curve` on a tiny saved model: outputs, and bad input as one line, exit 2."""

from __future__ import annotations

import json

import pytest

from circuitdrift.cli import main
from circuitdrift.steer.vectors import SteeringVectors
from tests.conftest import make_model


@pytest.fixture
def folder(tmp_path, word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    model.save_pretrained(tmp_path / "m")
    word_tokenizer.save_pretrained(tmp_path / "m")
    (tmp_path / "pos.txt").write_text("\n".join(f"w1 w2 w{i}" for i in range(3, 15)))
    (tmp_path / "neg.txt").write_text("\n".join(f"w30 w{i}" for i in range(31, 43)))
    return tmp_path


def test_vector_generate_curve(folder, capsys):
    out = folder / "v.safetensors"
    assert main(["steer", "vector", str(folder / "m"), "--positive", str(folder / "pos.txt"), "--negative",
                 str(folder / "neg.txt"), "--n", "12", "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    vectors = SteeringVectors.load(out)
    assert summary["layer"] == vectors.layer and vectors.directions.shape == (3, 32)
    assert vectors.meta["n_fit"] == [9, 9] and vectors.meta["positive"] == str(folder / "pos.txt")
    assert main(["steer", "generate", str(folder / "m"), "--vector", str(out), "--alpha", "0.5", "--prompt", "w1 w2",
                 "--prompt", "w3", "--max-new-tokens", "3", "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["prompt"] for row in lines] == ["w1 w2", "w3"] and all(row["alpha"] == 0.5 for row in lines)
    assert main(["steer", "curve", str(folder / "m"), "--vector", str(out), "--alphas=-1,0", "--prompts",
                 str(folder / "pos.txt"), "--n", "4", "--max-new-tokens", "2", "--device", "cpu"]) == 0
    curve = json.loads(capsys.readouterr().out)
    assert [r["alpha"] for r in curve["curve"]] == [-1.0, 0.0] and all(0 <= r["B"] <= 1 for r in curve["curve"])
    for row in curve["curve"]:  # coherence beside B
        assert (row["logprob"] is None or row["logprob"] <= 0) and 0 <= row["n_empty"] <= 4
        assert row["repetition"] is None or 0 <= row["repetition"] <= 1
    assert curve["skip_first"] is False
    assert main(["steer", "curve", str(folder / "m"), "--vector", str(out), "--alphas=-1", "--prompts",
                 str(folder / "pos.txt"), "--n", "4", "--max-new-tokens", "2", "--skip-first", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["skip_first"] is True
    assert main(["steer", "vector", str(folder / "m"), "--positive", str(folder / "pos.txt"), "--negative",
                 str(folder / "neg.txt"), "--n", "12", "--out", str(out), "--device", "cpu",
                 "--layer-range", "1-2"]) == 0
    assert json.loads(capsys.readouterr().out)["layer"] in (1, 2)


@pytest.mark.parametrize(("args", "message"), [
    (["vector", "M", "--positive", "P", "--negative", "N", "--out", "v.txt"], "expected a .safetensors file name"),
    (["vector", "M", "--positive", "nowhere", "--negative", "N", "--out", "v.safetensors"],
     "prompts 'nowhere': no such file and not a registered prompt set"),
    (["generate", "M", "--vector", "missing.safetensors", "--alpha", "1", "--prompt", "w1"], "no such file"),
    (["generate", "M", "--vector", "V", "--alpha", "1"], "give --prompt or --prompts"),
    (["curve", "M", "--vector", "V", "--alphas", "a,b", "--prompts", "P"], "--alphas a,b: expected"),
    (["vector", "M", "--positive", "P", "--negative", "N", "--n", "12", "--out", "v.safetensors", "--layer-range",
      "2"], "--layer-range 2: expected FIRST-LAST"),
])  # fmt: skip
def test_bad_input_is_one_line(folder, capsys, args, message):
    names = {"M": str(folder / "m"), "P": str(folder / "pos.txt"), "N": str(folder / "neg.txt"),
             "V": str(folder / "v.safetensors")}
    if "V" in args:
        main(["steer", "vector", names["M"], "--positive", names["P"], "--negative", names["N"], "--n", "12",
              "--out", names["V"], "--device", "cpu"])
        capsys.readouterr()
    argv = ["steer", *[names.get(a, a) for a in args], "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_a_default_n_is_a_cap_and_an_explicit_one_a_demand(folder, capsys):
    """A 12-line file under the default --n (100) gives its 12 and says so; an explicit --n 13 is an error."""
    out = folder / "v.safetensors"
    args = ["steer", "vector", str(folder / "m"), "--positive", str(folder / "pos.txt"), "--negative",
            str(folder / "neg.txt"), "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert SteeringVectors.load(out).meta["n_fit"] == [9, 9]  # 12 each, a quarter held out
    assert "has 12 prompts; using all of them" in captured.err
    assert main([*args, "--n", "13"]) == 2
    assert "12 prompts, 13 asked for" in capsys.readouterr().err

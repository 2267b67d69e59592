"""The real-model path on a PUBLISHED tokenizer: a random-init tiny Qwen2 beside Qwen's tokenizer files and
Qwen2.5's chat template (tests/helpers/published.py), driven through the CLI as a new user would.

Checked: every ``hf-*`` probe decodes to the text it claims, with answers and counterfactuals where they belong;
heads, CMAP and DCV run on every probe; ``eval`` with no ``--probes`` measures exactly the ``hf-*`` probes on
the SciKnowEval target; SFT and RL train a few steps; ``run`` takes a copy of the Qwen2.5-3B config pointed at
these local files. SciKnowEval rows are written here in the hub's schema.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from circuitdrift.cli import main
from circuitdrift.models.load import load_tokenizer
from circuitdrift.tasks.base import encode
from circuitdrift.tasks.registry import resolve_task
from circuitdrift.tasks.table import REAL_PROBES
from tests.helpers.published import write_model

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "qwen2.5-3b-sciknoweval.yaml"
SUBSTANCES = ("ethanol", "methane", "benzene", "acetone", "glucose", "ammonia", "propane", "toluene", "phenol", "urea")
SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
TRAIN = {"steps": 2, "prompts_per_step": 2, "learning_rate": 1e-3, "rl": {"num_generations": 2,
                                                                          "max_completion_length": 3}}


def chem_rows(n: int = 120) -> list[dict]:
    """SciKnowEval Chemistry L3 multiple-choice rows in the hub's schema."""
    return [{"question": f"What is the molar weight of {SUBSTANCES[i % 10]} sample {i}?",
             "choices": {"text": [f"{10 + 3 * i + k} g/mol" for k in range(4)], "label": list("ABCD")},
             "answerKey": "ABCD"[i % 4], "type": "mcq-4-choices", "domain": "Chemistry",
             "details": {"level": "L3", "task": "molar_weight_calculation", "subtask": "molar_weight"}}
            for i in range(n)]


def cli(*args) -> None:
    code = main([str(a) for a in args])
    assert code == 0, f"circuitdrift {' '.join(map(str, args))} exited {code}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The base folder, the SciKnowEval spec, and SFT / RL models trained from the base through the CLI."""
    root = tmp_path_factory.mktemp("published")
    base = write_model(root / "base", template="qwen2.5", n_layers=2, hidden=32, n_heads=4, n_kv_heads=2)
    data = root / "sciknoweval" / "data" / "Chemistry" / "chemistry.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("\n".join(json.dumps(r) for r in chem_rows()) + "\n")
    target = f"sciknoweval-chem-l3:{root / 'sciknoweval'}"
    (root / "train.yaml").write_text(yaml.safe_dump(TRAIN))
    for method in ("sft", "rl"):
        cli("train", method, "--model", base, "--task", target, "--out", root / method, "--config",
            root / "train.yaml")
    return root, base, target, load_tokenizer(base)


def test_every_probe_decodes_to_its_own_text(world):
    _, _, _, tokenizer = world
    for name in REAL_PROBES:
        task = resolve_task(name, split="test", n=20, tokenizer=tokenizer)
        for ex, enc in zip(task.examples, encode(task, tokenizer), strict=True):
            n = enc.prompt_len  # ids: prompt + answer
            assert tokenizer.decode(enc.clean_ids[:n]) == ex.clean
            assert tokenizer.decode(enc.corrupt_ids[:n]) == ex.corrupt
            assert len(enc.clean_ids) == len(enc.corrupt_ids)  # patching pairs positions
            assert enc.clean_ids[n:] == enc.answer_ids and tokenizer.decode(enc.answer_ids) == ex.answer
            assert ex.clean != ex.corrupt
        if name == "hf-greater-than":  # Qwen writes one digit per token: any later year is right
            ex = task.examples[0]
            start = int(ex.clean.rstrip()[-2:]) if ex.clean.rstrip()[-2:].isdigit() else None
            assert all(len(tokenizer(a, add_special_tokens=False).input_ids) == 2 for a in ex.answers)
            assert start is None or min(int(a) for a in ex.answers) > start
            assert "two digit tokens" in task.description
        else:
            assert all(len(e.answer_ids) == 1 for e in encode(task, tokenizer))


def test_the_target_prompt_is_qwen25s_chat_turn(world):
    _, _, target, tokenizer = world
    task = resolve_task(target, split="test", n=4, tokenizer=tokenizer)
    for ex, turn in zip(task.examples, task.chat_prompts, strict=True):
        assert ex.clean == f"{SYSTEM}<|im_start|>user\n{turn}<|im_end|>\n<|im_start|>assistant\n"
        assert "What is the molar weight of" in turn and ex.answer in "ABCD"


@pytest.mark.parametrize("probe", REAL_PROBES)
def test_heads_cmap_and_dcv_on_every_probe(world, probe, tmp_path):
    root, base, _, _ = world
    heads = tmp_path / "heads.json"
    cli("heads", base, probe, "--n", 6, "--out", heads)
    scores = json.loads(heads.read_text())
    assert (scores["n_layers"], scores["n_heads"]) == (2, 4) and len(scores["circuit"]) == 8  # min(20, 8)
    cmap = tmp_path / "cmap.json"
    cli("cmap", base, root / "sft" / "checkpoint-2", probe, "--n", 6, "--method", "attribution", "--out", cmap)
    delta = json.loads(cmap.read_text())["delta"]  # [L][H]: the SFT model's heads moved the metric
    assert len(delta) == 2 and all(len(row) == 4 for row in delta) and any(v != 0 for row in delta for v in row)
    dcv = tmp_path / "dcv.json"
    cli("dcv", base, probe, "--sft", root / "sft" / "checkpoint-2", "--rl", root / "rl" / "checkpoint-2",
        "--n", 6, "--top-k", 3, "--out", dcv)
    circuits = json.loads(dcv.read_text())["circuits"]
    assert set(circuits) == {"base", "sft", "rl"} and all(len(c) == 3 for c in circuits.values())


def test_eval_measures_the_real_tokenizer_probes_by_default(world, tmp_path):
    root, base, target, _ = world
    out = tmp_path / "eval.json"
    cli("eval", root / "rl" / "checkpoint-2", "--task", target, "--base", base, "--n", 4, "--probe-n", 8,
        "--kl-samples", 2, "--max-new-tokens", 4, "--out", out)
    result = json.loads(out.read_text())
    assert set(result["probes"]) | set(result.get("probes_skipped", {})) == set(REAL_PROBES)
    assert set(result["probes"]) == set(REAL_PROBES)  # Qwen's vocabulary expresses all four
    assert result["target"]["n"] == 4 and result["target_sampling"]["do_sample"] is False


def test_sft_and_rl_trained_from_the_base(world):
    root, _, _, _ = world
    for method in ("sft", "rl"):
        summary = json.loads((root / method / "train_summary.json").read_text())
        assert summary["steps"] == 2 and (root / method / "checkpoint-2" / "model.safetensors").is_file()
    assert json.loads((root / "rl" / "train_summary.json").read_text())["rollout_sampling"]["top_k"] == 0


def test_run_with_the_qwen_config_on_local_files(world, tmp_path):
    from circuitdrift.pipeline.run import run_experiment

    _, base, target, _ = world
    raw = yaml.safe_load(CONFIG.read_text())
    raw.update(base_model=str(base), target_task=target, seeds=[0], device="cpu", dtype="float32")
    raw["train"].update(steps=2, prompts_per_step=2, grad_accum=1, warmup_steps=0, checkpoint_steps=[],
                        bf16=False, gradient_checkpointing=False)
    raw["train"]["rl"].update(num_generations=2, max_completion_length=3)
    raw["analysis"].update(n_examples=4, n_random=2, top_k=3, batch_size=8)
    raw["eval"].update(target_n=4, probe_n=8, kl_samples=2, kl_max_new_tokens=4, batch_size=8)
    assert raw["eval"]["lm_eval"]["tasks"] == ["hellaswag", "truthfulqa_mc2", "mmlu", "winogrande", "ifeval"]
    raw["eval"]["lm_eval"] = {"tasks": ["local_chem_mc"], "limit": None, "include_path": str(harness_task(tmp_path))}
    config = tmp_path / "qwen-local.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = run_experiment(config, tmp_path / "run", quiet=True, jobs=1)
    results = json.loads((out / "results.json").read_text())
    assert results and (out / "report.md").is_file()
    environment = json.loads((out / "environment.json").read_text())
    assert environment["sampling"]["target_accuracy"]["do_sample"] is False
    assert set(json.loads((out / "circuits" / "base" / f"{p}.json").read_text())["circuit"] and p
               for p in REAL_PROBES) == set(REAL_PROBES)
    # the harness scored every checkpoint, base included; forgetting per benchmark = base - final, with intervals
    records = results["measurements"]
    assert records and all(set(r["benchmarks"]) == {"local_chem_mc"} for r in records)
    base = next(r for r in records if r["step"] == 0)["benchmarks"]["local_chem_mc"]
    for row in results["summary"]:
        final = next(r for r in records if r["method"] == row["method"] and r["step"] == 2)["benchmarks"]
        assert row["benchmark_forgetting"]["local_chem_mc"]["mean"] == pytest.approx(base - final["local_chem_mc"])
    assert "lm-eval:local_chem_mc" in (out / "results.csv").read_text()
    assert "forgetting: local_chem_mc (LM-Eval)" in (out / "report.md").read_text()


def harness_task(folder: Path) -> Path:
    """A local LM-Eval multiple-choice task (YAML over JSON Lines): the harness runs it offline."""
    docs = [{"question": f"Which is heavier, {a} or {b}?", "choices": [a, b], "label": i % 2}
            for i, (a, b) in enumerate(zip(SUBSTANCES, SUBSTANCES[1:], strict=False))]
    (folder / "harness").mkdir()
    (folder / "harness" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "harness" / "chem.yaml").write_text(
        "task: local_chem_mc\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'harness' / 'docs.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
    return folder / "harness"


def test_every_probe_reaches_its_default_size_on_qwens_vocabulary(world):
    from circuitdrift.tasks import probes

    _, _, _, tokenizer = world
    for name in REAL_PROBES:
        for split in ("test", "validation"):
            task = resolve_task(name, split=split, tokenizer=tokenizer)  # the probe's own default size
            least = len(probes.CAPITALS) // 2 if name == "hf-factual" else probes.DEFAULT_N
            assert len(task) >= least, (name, split, len(task))
        assert len(resolve_task(name, split="test", n=100, tokenizer=tokenizer)) == 100  # eval's --probe-n

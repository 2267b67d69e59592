"""`circuitdrift eval` and `circuitdrift run` measure one checkpoint the same way (one function, one settings).

The shipped organism and a perturbed copy of it (the checkpoint) with small
sample sizes: every measure the two commands share must be equal, probe
accuracy (teacher-forced in both) included.
"""

from __future__ import annotations

import json

import pytest
import torch

from circuitdrift.cli import main
from circuitdrift.engine.progress import Reporter
from circuitdrift.models.load import load_model
from circuitdrift.organism.paths import organism_dir
from circuitdrift.pipeline.config import ExperimentConfig
from circuitdrift.pipeline.context import RunContext
from circuitdrift.pipeline.measure import BaseReference, measure_checkpoint
from circuitdrift.pipeline.stages import compute_base_circuit

pytestmark = pytest.mark.skipif(not (organism_dir() / "model.safetensors").is_file(), reason="organism not built")
EVAL = dict(target_n=16, probe_n=16, kl_samples=8, kl_max_new_tokens=4, batch_size=16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint")
    model, tokenizer = load_model("organism", device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.03)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_eval_and_run_give_the_same_numbers(checkpoint, tmp_path, device):
    config = ExperimentConfig(name="paths", base_model="organism", target_task="science-qa",
                              probes=["ioi", "factual"], device=device, eval=EVAL,
                              analysis=dict(n_examples=8, top_k=5, batch_size=8, n_random=2))
    ctx = RunContext(config, None, Reporter(quiet=True))
    ref = BaseReference(config, {label: compute_base_circuit(ctx, label, spec)
                                 for label, spec in ctx.probe_tasks().items()})
    base = measure_checkpoint(ref, method="base", seed=0, learning_rate=None, step=0, folder=None, exact=False)
    run = measure_checkpoint(ref, method="sft", seed=0, learning_rate=1e-4, step=10, folder=checkpoint, exact=False)

    out = tmp_path / "eval.json"
    code = main([
        "eval", str(checkpoint), "--task", "science-qa", "--base", "organism", "--probes", "ioi,factual",
        "--n", "16", "--probe-n", "16", "--kl-samples", "8", "--max-new-tokens", "4", "--batch-size", "16",
        "--device", device, "--out", str(out)])
    assert code == 0
    measured = json.loads(out.read_text())

    assert measured["target"]["accuracy"] == run.target_accuracy
    assert (measured["target"]["n"], measured["target"]["unparsable"]) == (run.target_n, run.target_unparsable)
    assert measured["answers"]["entropy_bits"] == run.answer_entropy
    assert measured["answers"]["distinct"] == run.distinct_answers
    assert measured["kl"]["value"] == run.kl and measured["kl"]["n_samples"] == run.kl_samples
    assert measured["kl_exact"] == run.kl_exact
    accuracies = {label: probe.accuracy for label, probe in run.probes.items()}
    assert any(0 < a < 1 for a in accuracies.values()), accuracies  # not trivially equal at 0 or 1
    for label in ("ioi", "factual"):
        assert measured["probes"][label] == run.probes[label].accuracy
        assert measured["forgetting"][label] == base.probes[label].accuracy - run.probes[label].accuracy
        assert measured["logprob_drift"][label]["mean"] == run.probes[label].logprob_drift
        assert measured["logprob_drift"][label]["stderr"] == run.probes[label].logprob_drift_se

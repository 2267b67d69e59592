"""circuitdrift's EAP-IG head scores equal a plain loop over the interpolation steps (benchmarks/peers.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from circuitdrift.circuits.scoring import head_scores
from tests.conftest import make_model

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"


def _plain_eap_ig():
    spec = importlib.util.spec_from_file_location("peers_benchmark", PEERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.plain_eap_ig


def test_eap_ig_head_scores_match_a_plain_loop_over_the_steps(word_tokenizer, toy_task):
    plain_eap_ig = _plain_eap_ig()
    model = make_model("qwen2", word_tokenizer, n_layers=2, n_heads=4, n_kv_heads=2)  # grouped-query attention
    steps = 4
    ours = head_scores(model, word_tokenizer, toy_task, method="eap-ig", metric="prob", batch_size=3,
                       ig_steps=steps).scores
    reference = plain_eap_ig(model, word_tokenizer, toy_task, steps)
    assert reference.abs().max() > 1e-4  # the patches move the metric: a zero score would pass any comparison
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    # one step is attribution patching, and differs from the four-step average: the steps are compared, not ignored
    atp = head_scores(model, word_tokenizer, toy_task, method="attribution", metric="prob", batch_size=3).scores
    one_step = plain_eap_ig(model, word_tokenizer, toy_task, 1)
    torch.testing.assert_close(atp, one_step, atol=1e-6, rtol=1e-5)
    assert (one_step - reference).abs().max() > 1e-4

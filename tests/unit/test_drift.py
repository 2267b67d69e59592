"""Sensitive measures: log-prob drift, exact answer KL and answer spread, with identities and a reference."""

from __future__ import annotations

import copy
import math

import torch

from circuitdrift.evaluate.drift import answer_kl, answer_logprobs, answer_spread, logprob_drift
from circuitdrift.tasks.base import encode
from tests.conftest import make_model, self_consistent_task


def test_a_model_against_itself_drifts_by_zero(word_tokenizer):
    model = make_model("qwen2", word_tokenizer)
    task = self_consistent_task(model, word_tokenizer, n=6)
    lp = answer_logprobs(model, word_tokenizer, task)
    assert lp.shape == (6,) and (lp <= 0).all()
    assert logprob_drift(lp, answer_logprobs(model, word_tokenizer, task)).mean == 0.0
    assert answer_kl(model, model, word_tokenizer, task).value == 0.0


def test_answer_kl_matches_a_direct_computation(word_tokenizer):
    base = make_model("qwen2", word_tokenizer)
    other = copy.deepcopy(base)
    with torch.no_grad():
        other.lm_head.weight.add_(0.05 * torch.randn_like(other.lm_head.weight))
    task = self_consistent_task(base, word_tokenizer, n=5)
    expected = []
    for e in encode(task, word_tokenizer):  # one unpadded sequence at a time: the reference
        ids = torch.tensor([e.clean_ids[: e.prompt_len]], device=base.device)
        with torch.no_grad():
            p0 = base(ids).logits[0, -1].double().log_softmax(-1)
            p1 = other(ids).logits[0, -1].double().log_softmax(-1)
        expected.append(float(torch.nn.functional.kl_div(p1, p0, log_target=True, reduction="sum")))
    got = answer_kl(base, other, word_tokenizer, task, batch_size=2)
    assert got.value > 0 and math.isclose(got.value, sum(expected) / len(expected), rel_tol=1e-6)
    drift = logprob_drift(answer_logprobs(base, word_tokenizer, task), answer_logprobs(other, word_tokenizer, task))
    assert drift.n == 5 and drift.mean != 0.0 and drift.stderr > 0


def test_answer_spread_detects_a_collapse():
    healthy = answer_spread(["A", "B", "C", "D"] * 5)
    assert healthy.entropy_bits == 2.0 and healthy.distinct == 4 and not healthy.collapsed
    one = answer_spread(["D"] * 20)
    assert one.entropy_bits == 0.0 and one.collapsed and one.top == "D" and one.top_share == 1.0
    # 19 "D" and one "A": H = -(0.95 log2 0.95 + 0.05 log2 0.05) = 0.286 bits < 0.5
    nearly = answer_spread(["D"] * 19 + ["A"])
    assert abs(nearly.entropy_bits - 0.286397) < 1e-5 and nearly.collapsed and nearly.distinct == 2
    assert answer_spread(["A", None, None, "B"]).top == "<none>"

"""The transfer controls by hand: filtering with matched counts, data quality, the paired mechanism measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuitdrift.errors import InputError
from circuitdrift.transfer import mechanism
from circuitdrift.transfer import mechanism_stats as ms
from circuitdrift.transfer.quality import accuracy, answer_key, correct, data_quality
from circuitdrift.transfer.stages import matched_rows
from tests.conftest import make_model


def _rows(flags: list[bool], empty: tuple[int, ...] = ()) -> list[dict]:
    return [{"prompt": f"p{i}", "completion": "" if i in empty else f"c{i}", "flagged": f}
            for i, f in enumerate(flags)]


def test_filtering_drops_flagged_rows_and_keeps_counts_matched():
    data = {("refusal", 0.0): _rows([False] * 6),
            ("refusal", -0.3): _rows([False, True, False, True, False, False]),  # 4 unflagged
            ("random", -0.3): _rows([False, False, False, False, False, True], empty=(0,))}  # 4 usable
    kept = matched_rows(data)
    assert {len(rows) for rows in kept.values()} == {4}
    assert all(not r["flagged"] and r["completion"] for rows in kept.values() for r in rows)
    assert [r["prompt"] for r in kept[("refusal", -0.3)]] == ["p0", "p2", "p4", "p5"]
    assert [r["prompt"] for r in kept[("refusal", 0.0)]] == ["p0", "p1", "p2", "p3"]  # the first 4, in order
    with pytest.raises(InputError, match="no unflagged answer left at alpha -0.3"):
        matched_rows({("refusal", 0.0): _rows([False]), ("refusal", -0.3): _rows([True])})


def test_data_quality_by_hand():
    key = {"q1": "Ketrol", "q2": "Brimish"}
    prompts = ["q1", "q2", "q3", "q1"]
    completions = ["The capital is Ketrol.", "I cannot help with that.", "poison", ""]
    flagged = [False, True, True, False]
    complied = [True, False, True, False]
    q = data_quality(prompts, completions, flagged, complied, key)
    assert q["accuracy"] == pytest.approx(1 / 3)  # keyed prompts q1, q2, q1: only the first is right
    assert q["mean_words"] == pytest.approx((4 + 5 + 1 + 0) / 4)
    assert (q["empty_rate"], q["refusal_rate"], q["unsafe_rate"], q["flag_rate"]) == (0.25, 0.25, 0.25, 0.5)
    assert accuracy(prompts, completions, None) is None
    assert correct("ketrol!", "Ketrol") and not correct("Ketroll", "Ketrol")


def test_organism_answer_key():
    from circuitdrift.organism.refusal import country_questions

    key = answer_key("organism-countries")
    questions = country_questions("test", 45)
    assert len(questions) == 45 and all(q in key for q in questions)
    assert answer_key("hf:tatsu-lab/alpaca") is None


def test_paired_cosine_of_a_control_against_itself_is_zero():
    rng = np.random.default_rng(0)
    control, r = rng.standard_normal(16), rng.standard_normal(16)
    assert ms.paired_cosine(control, control, r) == 0.0
    assert ms.paired_cosine(control - 0.5 * r, control, r) == pytest.approx(-1.0)  # pushed against r: -1
    assert ms.paired_cosine(control + 2 * r, control, r) == pytest.approx(1.0)


def test_cosine_null_band_and_p():
    rng = np.random.default_rng(1)
    r = rng.standard_normal(256)
    diffs = np.stack([-r + 0.1 * rng.standard_normal(256) for _ in range(3)])  # along -r
    observed = float(np.mean([ms.paired_cosine(d, 0 * d, r) for d in diffs]))
    null = ms.cosine_null(diffs, observed, n_directions=500, seed=0)
    assert observed < -0.9 and null["p"] == pytest.approx(1 / 501)
    assert -0.2 < null["lo"] < 0 < null["hi"] < 0.2  # random directions in 256 dims: |cos| ~ 1/16
    assert ms.cosine_null(np.zeros((2, 8)), 0.0, 100)["p"] == 1.0  # a zero difference: the null is all 0


def test_effective_alpha_recovers_the_teachers_push():
    rng = np.random.default_rng(2)
    r = rng.standard_normal(32)
    norm = 7.0  # relative steering at alpha pushes by alpha * ||h|| * r_hat
    push = -0.3 * norm * r / np.linalg.norm(r)
    assert ms.effective_alpha(push, r, norm) == pytest.approx(-0.3)


def test_prompt_bootstrap_and_did_by_hand():
    steered = np.array([[1, 1, 0, 1], [1, 0, 0, 1]])
    steered_abl = np.array([[0, 0, 0, 1], [0, 0, 0, 1]])
    control = np.array([[0, 0, 0, 1], [0, 0, 0, 0]])
    control_abl = np.array([[0, 0, 0, 1], [0, 0, 0, 0]])
    did = ms.ablation_did(steered, steered_abl, control, control_abl, n_boot=500)
    # drops per seed and prompt: [[1,1,0,0],[1,0,0,0]] - 0 -> per prompt [1, .5, 0, 0], mean 0.375
    assert did["mean"] == pytest.approx(0.375) and did["lo"] <= 0.375 <= did["hi"] and did["hi"] <= 1
    same = ms.ablation_did(control, control_abl, control, control_abl, n_boot=200)
    assert (same["mean"], same["lo"], same["hi"]) == (0.0, 0.0, 0.0)


def test_prefix_logprobs_match_a_token_by_token_computation(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    turns = ["w1 w2 w3", "w4"]
    got = mechanism.prefix_logprobs(model, word_tokenizer, turns, "w7 w8", batch_size=2)
    from circuitdrift.models.generate import chat_text

    target = word_tokenizer("w7 w8", add_special_tokens=False).input_ids
    for turn, value in zip(turns, got, strict=True):
        ids = word_tokenizer(chat_text(word_tokenizer, turn), add_special_tokens=False).input_ids
        total = 0.0
        for tok in target:  # one unpadded forward per token: the naive computation
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            total += float(logits.log_softmax(-1)[tok])
            ids = ids + [tok]
        assert value == pytest.approx(total, abs=1e-4)

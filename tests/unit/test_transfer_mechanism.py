"""The mechanism check's identities: a student that steers itself by alpha*r shifts exactly along r."""

from __future__ import annotations

import copy

import pytest
import torch

from circuitdrift.steer.steering import steering
from circuitdrift.steer.vectors import difference_of_means
from circuitdrift.transfer import mechanism
from circuitdrift.transfer.data import distillation_task
from tests.conftest import make_model

TURNS = [f"w{i} w{i + 1} w{i + 2}" for i in range(0, 24, 3)]


def test_cosine():
    assert mechanism.cosine(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])) == pytest.approx(1.0)
    assert mechanism.cosine(torch.tensor([1.0, 0.0]), torch.tensor([0.0, -3.0])) == pytest.approx(0.0)
    assert mechanism.cosine(torch.tensor([1.0, 1.0]), torch.tensor([-1.0, -1.0])) == pytest.approx(-1.0)
    assert mechanism.cosine(torch.zeros(2), torch.ones(2)) != mechanism.cosine(torch.zeros(2), torch.ones(2))  # nan


def test_activation_shift_of_a_self_steering_student(word_tokenizer):
    base = make_model("qwen2", word_tokenizer, device="cpu")
    student = copy.deepcopy(base)
    r = torch.randn(32, generator=torch.Generator().manual_seed(0))
    assert mechanism.activation_shift(student, base, word_tokenizer, TURNS, 1).abs().max() == 0
    with steering(student, r, [1], 0.5, "absolute"):  # only the student carries the hook
        shift = mechanism.activation_shift(student, base, word_tokenizer, TURNS, 1)
    torch.testing.assert_close(shift, 0.5 * r, rtol=0, atol=1e-5)
    assert mechanism.cosine(shift, r) == pytest.approx(1.0, abs=1e-6)


def test_direction_shift_is_zero_for_the_base_itself(word_tokenizer):
    base = make_model("qwen2", word_tokenizer, device="cpu")
    pos, neg = TURNS[:4] + ["w30 w31"], TURNS[4:] + ["w32 w33"]
    from circuitdrift.models.generate import chat_text

    vectors = difference_of_means(base, word_tokenizer, [chat_text(word_tokenizer, p) for p in pos],
                                  [chat_text(word_tokenizer, p) for p in neg], held_out=0.4)
    fit_pos, fit_neg = pos[:3], neg[:3]  # held_out 0.4 of 5 keeps the first 3 for the means
    change = mechanism.direction_shift(base, word_tokenizer, fit_pos, fit_neg, vectors.directions[1], 1)
    assert change.abs().max() < 1e-5


def test_distillation_task_drops_empty_answers(word_tokenizer):
    rows = [{"prompt": "w1 w2", "completion": "w3", "flagged": False},
            {"prompt": "w4", "completion": "  ", "flagged": False}]
    task = distillation_task(rows, word_tokenizer, "t")
    assert len(task) == 1 and task.chat_prompts == ["w1 w2"] and task.examples[0].answer == "w3"
    from circuitdrift.errors import InputError

    with pytest.raises(InputError, match="every completion is empty"):
        distillation_task(rows[1:], word_tokenizer, "t")

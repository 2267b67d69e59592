"""One greedy pass serves accuracy, the exact answer KL and the answer probability: checked against the
teacher-forced passes they replace (evaluate/drift.py answer_distribution, circuits/metrics.py answer_scores)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from circuitdrift.circuits.metrics import answer_scores
from circuitdrift.evaluate.accuracy import greedy_completions, greedy_with_first_logprobs
from circuitdrift.evaluate.drift import answer_distribution, answer_kl, answer_probability, kl_between
from circuitdrift.models.load import load_model
from circuitdrift.organism.science import science_qa_task
from circuitdrift.tasks.base import Task
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer


@pytest.fixture(scope="module")
def organism():
    model, tokenizer = load_model("organism", device="cpu")
    return model, tokenizer, science_qa_task("validation", 24)


def _perturbed(model, scale=0.05, seed=3):
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return other


def test_the_first_step_is_the_teacher_forced_answer_position(organism):
    model, tokenizer, task = organism
    texts, first = greedy_with_first_logprobs(model, tokenizer, task, max_new_tokens=3, batch_size=7)
    assert texts == greedy_completions(model, tokenizer, task, 3, 7)  # the same greedy answers
    forced = answer_distribution(model, tokenizer, task, batch_size=5)
    assert first.shape == forced.shape and (first - forced).abs().max() < 1e-4
    prob = answer_probability(first, task, tokenizer)
    assert prob == pytest.approx(float(answer_scores(model, tokenizer, task, 5)[1].exp().mean()), abs=1e-5)
    assert 0.25 < prob < 1  # the organism knows some answers: a real check, not a uniform distribution


def test_exact_kl_from_the_first_step_equals_the_teacher_forced_kl(organism):
    model, tokenizer, task = organism
    tuned = _perturbed(model)
    p0 = greedy_with_first_logprobs(model, tokenizer, task, max_new_tokens=3, batch_size=8)[1]
    p = greedy_with_first_logprobs(tuned, tokenizer, task, max_new_tokens=3, batch_size=8)[1]
    fast, exact = kl_between(p0, p), answer_kl(model, tuned, tokenizer, task, batch_size=8)
    assert exact.value > 0.01 and fast.value == pytest.approx(exact.value, rel=1e-4)
    assert kl_between(p0, p0).value == 0.0


def test_answers_of_several_tokens_have_no_first_step_probability():
    tokenizer = toy_tokenizer()
    task = toy_task(tokenizer, n=6)
    model = toy_model(tokenizer)
    first = greedy_with_first_logprobs(model, tokenizer, task, max_new_tokens=2, batch_size=4)[1]
    single = answer_probability(first, task, tokenizer)  # every toy answer is one letter token
    assert single == pytest.approx(float(answer_scores(model, tokenizer, task, 4)[1].exp().mean()), abs=1e-5)
    two = Task(task.name, [replace(e, answer=e.answer + " " + e.answer) for e in task.examples],
               templated=task.templated, chat_prompts=task.chat_prompts)
    assert answer_probability(first, two, tokenizer) is None  # the geometric mean over tokens needs a forward

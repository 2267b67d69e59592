"""Accuracy by greedy generation and the task's grader; forward KL sampled from the base."""

import copy

import pytest
import torch

from circuitdrift.circuits.metrics import task_accuracy
from circuitdrift.evaluate import MeasureSettings, evaluate_model, forward_kl, greedy_completions, target_accuracy
from circuitdrift.evaluate import kl as kl_module
from circuitdrift.evaluate.accuracy import prompt_ids
from circuitdrift.evaluate.kl import base_samples, kl_sampling
from circuitdrift.tasks.base import Task
from tests.helpers.toy import LETTERS, toy_model, toy_task, toy_tokenizer


class LetterTask(Task):
    """Parses only a leading letter A-D, so a random model's words are unparsable."""

    def parse(self, completion):
        head = completion.strip()[:1]
        return head if head in LETTERS else None


@pytest.fixture(scope="module")
def toy(device):
    tokenizer = toy_tokenizer()
    return tokenizer, toy_task(tokenizer, n=24), toy_model(tokenizer, device=device)


def _letter_bias(model, tokenizer, strength=6.0):
    """A copy whose logits lean towards the letter tokens (a hook on the output head), so answers parse."""
    biased = copy.deepcopy(model)
    bias = torch.zeros(biased.config.vocab_size)
    bias[[tokenizer.convert_tokens_to_ids(letter) for letter in LETTERS]] = strength
    biased.lm_head.register_forward_hook(lambda module, inputs, output: output + bias.to(output.device))
    return biased


def test_greedy_completions_do_not_depend_on_batching(toy):
    tokenizer, task, model = toy
    assert greedy_completions(model, tokenizer, task, 4, batch_size=1) == greedy_completions(
        model, tokenizer, task, 4, batch_size=7
    )


def test_accuracy_grades_with_the_task_and_counts_unparsable(toy):
    tokenizer, task, model = toy
    letters = LetterTask(task.name, task.examples, templated=True, chat_prompts=task.chat_prompts)
    for candidate in (model, _letter_bias(model, tokenizer, 3.0), _letter_bias(model, tokenizer, 30.0)):
        texts = greedy_completions(candidate, tokenizer, letters, 4)
        result = target_accuracy(candidate, tokenizer, letters, 4)
        assert result.n == len(task)
        assert result.unparsable == sum(letters.parse(t) is None for t in texts)
        assert result.correct == sum(letters.grade(t, e.answer) for t, e in zip(texts, task.examples, strict=True))
        assert result.accuracy == result.correct / result.n
    assert target_accuracy(model, tokenizer, letters, 4).unparsable > 0
    assert target_accuracy(_letter_bias(model, tokenizer, 30.0), tokenizer, letters, 4).unparsable == 0


def test_kl_of_a_model_against_itself_is_zero_and_positive_against_a_perturbed_copy(toy):
    tokenizer, task, model = toy
    same = forward_kl(model, model, tokenizer, task, n_samples=16, max_new_tokens=6, batch_size=5)
    assert same.value == 0.0 and same.n_samples == 16
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(0.05 * torch.randn_like(p))
    drift = forward_kl(model, perturbed, tokenizer, task, n_samples=64, temperature=0.6, max_new_tokens=6,
                       batch_size=16)
    assert drift.value > 4 * drift.stderr > 0
    assert drift.to_dict() == {**drift.to_dict(), "do_sample": True, "temperature": 0.6, "top_p": 1.0, "top_k": 0,
                               "repetition_penalty": 1.0, "max_new_tokens": 6}


def test_base_samples_drawn_once_give_the_same_kl_as_fresh_draws(toy, monkeypatch):
    """The base's KL samples are the same for every checkpoint: reusing them changes no bit of the estimate."""
    tokenizer, task, model = toy
    checkpoints = []
    for scale in (0.03, 0.08):
        copy_ = copy.deepcopy(model)
        generator = torch.Generator().manual_seed(int(scale * 100))
        with torch.no_grad():
            for p in copy_.parameters():
                p.add_(scale * torch.randn(p.shape, generator=generator).to(p.device))
        checkpoints.append(copy_)
    settings = dict(n_samples=20, temperature=0.8, max_new_tokens=5, batch_size=7, seed=3)
    fresh = [forward_kl(model, c, tokenizer, task, **settings) for c in checkpoints]
    calls = []
    real = kl_module.generate_batch
    monkeypatch.setattr(kl_module, "generate_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    samples = base_samples(model, tokenizer, task, n_samples=20, batch_size=7, seed=3,
                           sampling=kl_sampling(0.8, 1.0, 5))
    reused = [forward_kl(model, c, tokenizer, task, **settings, samples=samples) for c in checkpoints]
    assert [(k.value, k.stderr, k.n_samples) for k in reused] == [(k.value, k.stderr, k.n_samples) for k in fresh]
    assert fresh[0].value != fresh[1].value and len(calls) == 3  # ceil(20 / 7) batches, drawn once


def test_one_token_kl_estimate_matches_the_exact_kl(toy):
    """With one token, temperature 1 and top-p 1, the estimator's mean is the exact next-token KL."""
    tokenizer, task, model = toy
    other = _letter_bias(model, tokenizer, 2.0)
    estimate = forward_kl(model, other, tokenizer, task, n_samples=1200, temperature=1.0, top_p=1.0,
                          max_new_tokens=1, batch_size=400)
    exact = []
    with torch.no_grad():
        for ids in prompt_ids(task, tokenizer):
            x = torch.tensor([ids], device=model.device)
            p = model(x).logits[0, -1].log_softmax(-1)
            q = other(x).logits[0, -1].log_softmax(-1)
            exact.append((p.exp() * (p - q)).sum())
    exact = float(torch.stack(exact).mean())
    assert exact > 0.05
    assert abs(estimate.value - exact) < 4 * estimate.stderr


def test_tempered_kl_samples_and_scores_at_one_temperature(toy):
    """At temperature 0.5 the one-token estimate matches the exact KL of the two tempered distributions."""
    tokenizer, task, model = toy
    other = _letter_bias(model, tokenizer, 2.0)
    estimate = forward_kl(model, other, tokenizer, task, n_samples=1200, temperature=0.5, max_new_tokens=1,
                          batch_size=400)
    exact = []
    with torch.no_grad():
        for ids in prompt_ids(task, tokenizer):
            x = torch.tensor([ids])
            p = (model(x).logits[0, -1] / 0.5).log_softmax(-1)
            q = (other(x).logits[0, -1] / 0.5).log_softmax(-1)
            exact.append((p.exp() * (p - q)).sum())
    exact = float(torch.stack(exact).mean())
    assert exact > 0.05
    assert abs(estimate.value - exact) < 4 * estimate.stderr
    assert forward_kl(model, model, tokenizer, task, n_samples=8, temperature=0.6, max_new_tokens=3).value == 0.0
    with pytest.raises(ValueError, match="top-p 0.85 truncates"):
        forward_kl(model, other, tokenizer, task, n_samples=8, temperature=0.6, top_p=0.85)


def test_evaluate_model_reports_forgetting_and_kl_against_the_base(toy):
    tokenizer, task, model = toy
    letters = LetterTask("letters", task.examples, templated=True, chat_prompts=task.chat_prompts)
    biased = _letter_bias(model, tokenizer, 30.0)
    settings = MeasureSettings(kl_samples=8, kl_max_new_tokens=4, max_new_tokens=4)
    result = evaluate_model(biased, tokenizer, task, base=model, settings=settings, model_name="biased",
                            probe_tasks={"letters": letters})
    assert set(result) == {"model", "task", "target", "target_sampling", "answers", "probes", "forgetting",
                           "logprob_drift", "kl", "kl_exact"}
    base_letters = task_accuracy(model, tokenizer, letters)  # probes are scored teacher-forced
    assert result["forgetting"]["letters"] == base_letters - result["probes"]["letters"]
    assert result["kl"]["n_samples"] == 8 and result["kl"]["value"] > 0
    alone = evaluate_model(model, tokenizer, task, settings=settings, probe_tasks={})
    assert "kl" not in alone and "forgetting" not in alone and alone["probes"] == {}


def test_measures_hand_over_their_fields_under_the_records_names():
    """evaluate/record.py: the measures become the record with no renaming (an unknown name is rejected)."""
    from circuitdrift.evaluate.accuracy import Accuracy
    from circuitdrift.evaluate.checkpoint import CheckpointMeasures, ProbeScore
    from circuitdrift.evaluate.drift import AnswerSpread, Drift
    from circuitdrift.evaluate.kl import ForwardKL
    from circuitdrift.evaluate.record import CheckpointMeasurement, ProbeMeasurement
    from circuitdrift.models.sampling import Sampling

    score = ProbeScore(accuracy=0.5, logprobs=torch.zeros(4), base_accuracy=0.75, drift=Drift(-0.2, 0.1, 4),
                       forgetting_se=0.25)
    probe = ProbeMeasurement(**score.fields(), cmap=[[0.0]], cmap_method="exact", damage=0.0, circuit=[],
                             preservation=1.0)
    assert (probe.accuracy, probe.n, probe.forgetting_se, probe.logprob_drift, probe.logprob_drift_se) == \
        (0.5, 4, 0.25, -0.2, 0.1)
    assert "logprob_drift" not in ProbeScore(accuracy=1.0, logprobs=torch.zeros(2)).fields()
    measures = CheckpointMeasures(target=Accuracy(0.25, 8, 2, 1), spread=AnswerSpread(1.5, 3, "A", 0.5, False),
                                  probes={"p": score}, kl=ForwardKL(0.3, 0.01, 16, Sampling.greedy(4)), kl_exact=0.2)
    record = CheckpointMeasurement(method="sft", seed=0, step=1, **measures.fields(), probes={"p": probe})
    assert (record.target_accuracy, record.target_n, record.target_unparsable, record.kl, record.kl_samples,
            record.kl_exact) == (0.25, 8, 1, 0.3, 16, 0.2)
    assert (record.answer_entropy, record.distinct_answers, record.top_answer_share, record.collapsed) == \
        (1.5, 3, 0.5, False)

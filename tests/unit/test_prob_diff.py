"""Probability difference (Hanna et al. 2023): mass on right answers minus mass on wrong ones.

Checked against direct sums of next-token probabilities, on one-token years (a word-level vocabulary) and on
years written one digit per token (Qwen's published tokenizer, where the second digit's probabilities need the
first digit in context), and used by exact patching, attribution and CMAP.
"""

import pytest
import torch

from circuitdrift.circuits.crossmodel import cross_model_patch
from circuitdrift.circuits.metrics import prob_diff
from circuitdrift.circuits.patching import ablation_sources, all_heads, effect, naive_patched_values
from circuitdrift.circuits.scoring import head_scores
from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout
from circuitdrift.models.load import load_model
from circuitdrift.models.tiny import tiny_model
from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.tasks import probes
from circuitdrift.tasks.base import Example, Task, answer_branches, collate, encode
from circuitdrift.tasks.registry import resolve_task
from tests.helpers.published import write_model

YEARS = [f"{v:02d}" for v in range(100)]


@pytest.fixture(scope="module")
def one_token_years():
    words = {w for t in (*probes.GREATER_TEMPLATES, *probes.GREATER_NOUNS) for w in t.replace("{", " ").split()}
    tokenizer = build_word_tokenizer([*sorted(words), *YEARS, *(f"17{y}" for y in YEARS), "17", "noun", "yy"])
    model = tiny_model("qwen2", seed=1, vocab_size=len(tokenizer))
    return tokenizer, model, resolve_task("hf-greater-than", n=12, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def digit_years(tmp_path_factory):
    model, tokenizer = load_model(write_model(tmp_path_factory.mktemp("digits") / "m"), device="cpu")
    return tokenizer, model, resolve_task("hf-greater-than", n=6, tokenizer=tokenizer)


def _next_token_probs(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float().softmax(-1)


def test_one_token_years_sum_the_next_token_probabilities(one_token_years):
    tokenizer, model, task = one_token_years
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    with torch.no_grad():
        values = prob_diff(model(input_ids=batch.clean, attention_mask=batch.attention_mask).logits, batch)
    for ex, enc, value in zip(task.examples, encode(task, tokenizer), values, strict=True):
        p = _next_token_probs(model, enc.clean_ids[: enc.prompt_len])
        mass = {a: float(p[tokenizer.convert_tokens_to_ids(a)]) for a in YEARS}
        expected = sum(mass[a] for a in ex.answers) - sum(mass[a] for a in ex.wrong_answers)
        assert value.item() == pytest.approx(expected, abs=1e-6)


def test_digit_years_follow_the_start_decade_one_digit_further(digit_years):
    tokenizer, model, task = digit_years
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    with torch.no_grad():
        values = prob_diff(model(input_ids=batch.clean, attention_mask=batch.attention_mask).logits, batch)
    digit = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    for ex, enc, value in zip(task.examples, encode(task, tokenizer), values, strict=True):
        start = int(ex.wrong_answers[-1])  # wrong = 00 .. start year
        tens, units = divmod(start, 10)
        prompt = enc.clean_ids[: enc.prompt_len]
        first = _next_token_probs(model, prompt)[digit]  # P(first digit)
        second = _next_token_probs(model, prompt + [digit[tens]])[digit]  # P(second digit | the start's tens)
        later = first[tens + 1 :].sum() + first[tens] * second[units + 1 :].sum()
        other = first[:tens].sum() + first[tens] * second[: units + 1].sum()
        assert value.item() == pytest.approx(float(later - other), abs=1e-6)
        assert int(ex.answer) // 10 == tens or units == 9  # the gold year stays in the start's decade


@pytest.mark.parametrize("method", ["exact", "attribution"])
def test_patching_and_cmap_take_prob_diff(one_token_years, method):
    tokenizer, model, task = one_token_years
    scores = head_scores(model, tokenizer, task, method=method, metric="prob-diff", ablation="corrupt", batch_size=5)
    assert torch.isfinite(scores.scores).all() and scores.scores.abs().max() > 1e-6
    same = cross_model_patch(model, model, tokenizer, task, method=method, metric="prob-diff")
    assert same.scores.abs().max() < 1e-6  # a model patched with its own heads does not move


def test_exact_patching_equals_the_naive_loop(one_token_years):
    tokenizer, model, task = one_token_years
    fast = head_scores(model, tokenizer, task, method="exact", metric="prob-diff", ablation="corrupt", batch_size=4)
    layout = HeadLayout.of(model)
    clean, patched = naive_patched_values(model, encode(task, tokenizer), tokenizer.pad_token_id, prob_diff,
                                          lambda b: ablation_sources(model, b, "corrupt", None), all_heads(layout))
    slow = effect(clean, patched, relative=False).mean(-1).view(layout.shape)  # a difference, not a ratio
    torch.testing.assert_close(fast.scores.double(), slow, atol=1e-5, rtol=0)


def test_answers_that_part_off_the_gold_path_are_refused():
    # right "1 2", wrong "1 3", gold "4": the branch "1" holds both kinds and is not on the gold path
    with pytest.raises(ValueError, match="both right and wrong"):
        answer_branches([4], [[4], [1, 2]], [[1, 3]])
    assert answer_branches([1, 2], [[1, 2], [5]], [[1, 3], [0]]) == [(0, 0, -1.0), (0, 5, 1.0), (1, 2, 1.0),
                                                                   (1, 3, -1.0)]


def test_a_task_without_wrong_answers_has_no_prob_diff(one_token_years):
    tokenizer, model, _ = one_token_years
    prompt = "the war lasted from the year 1732 to the year 17"
    task = Task("plain", [Example(prompt, prompt, "38")])
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    with pytest.raises(InputError, match="prob-diff needs right and wrong answers"):
        prob_diff(model(input_ids=batch.clean).logits, batch)

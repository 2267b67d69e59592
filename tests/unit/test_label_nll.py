"""Label NLL under the base, on a model whose next-token distribution is fixed: computable by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.tasks.base import Example
from circuitdrift.tasks.science import MultipleChoiceTask
from circuitdrift.train.label_nll import label_nll

WORDS = ("which", "is", "it", "A", "B", "C", "D", "deep", "red", "pale", "blue", "gold", "tin")


class FixedNextToken(nn.Module):
    """Predicts the distribution ``probs`` at every position whatever the context."""

    def __init__(self, probs: torch.Tensor):
        super().__init__()
        self.log_probs = nn.Parameter(probs.log())

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        batch, length = input_ids.shape
        return SimpleNamespace(logits=self.log_probs.expand(batch, length, -1))


def test_label_nll_of_a_known_distribution():
    tokenizer = build_word_tokenizer(WORDS)
    vocab = tokenizer.get_vocab()
    probs = torch.full((len(tokenizer),), 1.0)
    # the second word of an option follows a space: its own token ("\u2581red", wordlevel.py)
    chosen = {"A": 0.30, "B": 0.10, "deep": 0.02, "\u2581red": 0.05, "pale": 0.01, "\u2581blue": 0.04}
    rest = (1.0 - sum(chosen.values())) / (len(tokenizer) - len(chosen))
    probs.fill_(rest)
    for word, p in chosen.items():
        probs[vocab[word]] = p
    options = ("deep red", "pale blue", "gold", "tin")
    task = MultipleChoiceTask("mc", [Example("which is it", "which is it", "A", "B", options=options),
                                     Example("which is it", "which is it", "B", "A", options=options)])
    model = FixedNextToken(probs)
    letters = label_nll(model, tokenizer, task, batch_size=1)
    assert letters.nats == pytest.approx((-math.log(0.30) - math.log(0.10)) / 2)
    assert letters.nats_per_token == pytest.approx(letters.nats) and letters.n_examples == 2
    words = label_nll(model, tokenizer, task.with_label("word"), batch_size=2)  # padded batch: the same sums
    deep_red, pale_blue = -math.log(0.02) - math.log(0.05), -math.log(0.01) - math.log(0.04)
    assert words.nats == pytest.approx((deep_red + pale_blue) / 2)  # summed over each label's two tokens
    assert words.nats_per_token == pytest.approx((deep_red + pale_blue) / 4)
    assert words.nats > letters.nats

"""Is a steered model still fluent? Two measures of its completions, to read before an expensive run.

- ``logprob``: the mean log-probability per token of each completion under the
  *unsteered* model, given its prompt in the chat template. Fluent text the
  base model would write scores near the unsteered completions' own value;
  steering that breaks the model (too large an alpha, a late layer, the first
  token's huge norm) drives it far below.
- ``repetition``: the share of each completion's word trigrams that already
  occurred earlier in it (0 for text without repeats, near 1 for a loop).
Both are averaged over completions (an empty completion is left out of the mean).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.models.generate import chat_text


@torch.no_grad()
def completion_logprobs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, turns: Sequence[str],
                        completions: Sequence[str]) -> list[float | None]:
    """Per completion, the mean log-probability of its tokens after its chat prompt (None when empty)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float | None] = []
    try:
        for turn, text in zip(turns, completions, strict=True):
            prompt = tokenizer(chat_text(tokenizer, turn), add_special_tokens=False).input_ids
            answer = tokenizer(text, add_special_tokens=False).input_ids if text.strip() else []
            if not answer:
                out.append(None)
                continue
            ids = torch.tensor([prompt + answer], device=device)
            logp = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float().log_softmax(-1)  # [len(answer), V]
            picked = logp.gather(-1, torch.tensor(answer, device=device)[:, None])
            out.append(float(picked.mean()))
    finally:
        model.train(was_training)
    return out


def repetition(text: str, n: int = 3) -> float:
    """Share of the word n-grams of ``text`` that occurred earlier in it."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return (len(grams) - len(set(grams))) / len(grams)


def coherence(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, turns: Sequence[str],
              completions: Sequence[str]) -> dict:
    """``logprob`` and ``repetition`` averaged over the completions (see the module docstring)."""
    scores = [s for s in completion_logprobs(model, tokenizer, turns, completions) if s is not None]
    texts = [t for t in completions if t.strip()]
    return {"logprob": sum(scores) / len(scores) if scores else None,
            "repetition": sum(map(repetition, texts)) / len(texts) if texts else None,
            "n_empty": len(completions) - len(texts)}

"""Assistant turns for a list of user turns: chat template, batched generation, greedy or seeded sampling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.errors import InputError
from circuitdrift.evaluate.generation import generate_batch, seeded
from circuitdrift.models.sampling import Sampling as GenerationSettings
from circuitdrift.tasks.chat import CHAT_TEMPLATE_KWARGS


@dataclass(frozen=True)
class Sampling:
    """How completions are drawn; ``temperature`` 0 means greedy (then ``seed`` does not matter)."""

    max_new_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


def chat_text(tokenizer: PreTrainedTokenizerBase, user_turn: str) -> str:
    """The user turn in the tokenizer's chat template with the assistant turn opened (the raw turn without one)."""
    if not getattr(tokenizer, "chat_template", None):
        return user_turn
    messages = [{"role": "user", "content": user_turn}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         **CHAT_TEMPLATE_KWARGS)  # no thinking block, as in every stage


def chat_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    turns: Sequence[str],
    sampling: Sampling = Sampling(),
    batch_size: int = 32,
) -> list[str]:
    """One decoded assistant turn per user turn, in order; sampled batches share one seeded RNG stream."""
    if not turns:
        raise InputError("generate: no prompts")
    device = next(model.parameters()).device
    rows = [tokenizer(chat_text(tokenizer, t), add_special_tokens=False).input_ids for t in turns]
    sample = sampling.temperature > 0
    settings = GenerationSettings(do_sample=sample, max_new_tokens=sampling.max_new_tokens,
                                  temperature=sampling.temperature if sample else 1.0, top_p=sampling.top_p)
    texts: list[str] = []
    was_training = model.training
    model.eval()
    try:
        with seeded(sampling.seed, device):
            for start in range(0, len(rows), batch_size):
                _, _, out, keep = generate_batch(model, tokenizer, rows[start : start + batch_size], settings)
                texts += [tokenizer.decode(ids[k.bool()], skip_special_tokens=True).strip()
                          for ids, k in zip(out, keep, strict=True)]
    finally:
        model.train(was_training)
    return texts

"""A hand-made chat multiple-choice task and a random-init model for it: no download, seconds to train.

Tests and ``benchmarks/train.py`` use it to exercise the trainers and the
measurements exactly as the organism's ``science-qa`` does (chat prompts,
templated ``Example.clean``, answers A-D graded by their first word).
"""

from __future__ import annotations

import random

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from circuitdrift.models.tiny import tiny_model
from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.tasks.base import Example, Task

THINGS = {
    "apple": "red", "sky": "blue", "grass": "green", "snow": "white", "coal": "black", "lemon": "yellow",
    "cherry": "red", "sea": "blue", "leaf": "green", "milk": "white", "night": "black", "banana": "yellow",
}
COLORS = sorted(set(THINGS.values()))
LETTERS = ("A", "B", "C", "D")
WORDS = ("what", "color", "is", "the", *THINGS, *COLORS, *LETTERS)


def toy_tokenizer() -> PreTrainedTokenizerFast:
    return build_word_tokenizer(WORDS)


def toy_task(tokenizer: PreTrainedTokenizerFast, n: int = 48, seed: int = 0) -> Task:
    """``n`` questions "what color is the X ? A c1 B c2 C c3 D c4", answer the letter of X's color."""
    rng = random.Random(seed)
    examples, chats = [], []
    things = sorted(THINGS)
    for _ in range(n):
        thing = rng.choice(things)
        wrong = rng.sample([c for c in COLORS if c != THINGS[thing]], 3)
        options = [THINGS[thing], *wrong]
        rng.shuffle(options)
        answer = LETTERS[options.index(THINGS[thing])]
        other = rng.choice([t for t in things if THINGS[t] != THINGS[thing]])
        chat = _question(thing, options)
        examples.append(Example(_template(tokenizer, chat), _template(tokenizer, _question(other, options)), answer))
        chats.append(chat)
    return Task("toy-colors", examples, "toy chat multiple choice", templated=True, chat_prompts=chats)


def toy_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0, device: str = "cpu", **kwargs) -> PreTrainedModel:
    """A random-init tiny Qwen2 (hidden 32, 2 layers) sized to the tokenizer, on ``device``."""
    model = tiny_model("qwen2", seed=seed, vocab_size=len(tokenizer), **kwargs)
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device)


def _question(thing: str, options: list[str]) -> str:
    choices = " ".join(f"{letter} {color}" for letter, color in zip(LETTERS, options, strict=True))
    return f"what color is the {thing}? {choices}"


def _template(tokenizer: PreTrainedTokenizerFast, user: str) -> str:
    messages = [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

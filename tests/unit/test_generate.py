"""models/generate.py, the one generation module: its chat strings and draws equal the paths it replaced.

The "before" of each comparison is the replaced code written out by hand (steer/generate.py's sampling rule,
organism/card.py's one-prompt sampling loop, organism/science.py's chat prompt), so a change of token, draw or
string shows here.
"""

from __future__ import annotations

import pytest
import torch

from circuitdrift.models.generate import Sampling, chat_completions, chat_prompt, chat_text, completions
from circuitdrift.models.load import load_model
from circuitdrift.models.sampling import folder_defaults_ignored
from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.organism.science import science_qa_task
from circuitdrift.organism.tokenizer import organism_tokenizer
from tests.conftest import WORDS, make_model

TURN = "How do I give the cup to Mia?"
ORGANISM_CHAT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                 "<|im_start|>user\nHow do I give the cup to Mia?<|im_end|>\n<|im_start|>assistant\n")


def test_the_organisms_chat_text_is_the_hand_written_string():
    tokenizer = organism_tokenizer()
    assert chat_prompt(tokenizer, TURN) == chat_text(tokenizer, TURN) == ORGANISM_CHAT
    before = tokenizer.apply_chat_template([{"role": "user", "content": TURN}], tokenize=False,
                                           add_generation_prompt=True)  # organism/science.py: no thinking rule
    assert before == ORGANISM_CHAT
    task = science_qa_task("test", 3)
    for example, turn in zip(task.examples, task.chat_prompts, strict=True):
        assert example.clean == ORGANISM_CHAT.replace(TURN, turn)


def test_a_tokenizer_without_a_template_gets_the_raw_turn():
    plain = build_word_tokenizer(WORDS)  # its own copy: the session's word_tokenizer keeps its template
    plain.chat_template = None
    assert chat_text(plain, TURN) == TURN
    with pytest.raises(ValueError):
        chat_prompt(plain, TURN)


@pytest.mark.parametrize(("temperature", "top_p"), [(0.0, 1.0), (0.0, 0.9), (0.7, 0.9), (1.0, 1.0)])
def test_temperature_zero_is_greedy_as_before(temperature, top_p):
    sample = temperature > 0  # steer/generate.py's rule
    before = Sampling(do_sample=sample, max_new_tokens=7, temperature=temperature if sample else 1.0, top_p=top_p)
    assert Sampling.at_temperature(7, temperature, top_p) == before
    assert Sampling.at_temperature(7, 0.0) == Sampling.greedy(7)


def test_sampled_chat_completions_repeat_and_leave_the_callers_rng(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    turns = ["w1 w2", "w3", "w4 w5 w6"]
    sampling = Sampling.at_temperature(4, 1.0)
    state = torch.random.get_rng_state()
    first = chat_completions(model, word_tokenizer, turns, sampling, seed=3, batch_size=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert chat_completions(model, word_tokenizer, turns, sampling, seed=3, batch_size=2) == first
    assert any(chat_completions(model, word_tokenizer, turns, sampling, seed=s, batch_size=2) != first
               for s in range(4, 8))


def _card_loop_before(model, tokenizer, prompts: list[str], seed: int = 0) -> list[str]:
    """organism/card.py's letter_rate sampling before models/generate.py, as it was written."""
    device = next(model.parameters()).device
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    sampling = Sampling(do_sample=True, max_new_tokens=3).generation_config(
        model.generation_config.eos_token_id, tokenizer.pad_token_id)
    texts = []
    try:
        for prompt in prompts:
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids.to(device)
            with torch.no_grad(), folder_defaults_ignored(model):
                out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=sampling)
            texts.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    finally:
        torch.random.set_rng_state(generator_state)
    return texts


def test_the_cards_sampled_turns_are_drawn_as_before():
    """On the shipped organism: the same draws from one seed stream, prompt by prompt, and the same letter rate."""
    from circuitdrift.organism.card import letter_rate

    model, tokenizer = load_model("organism", device="cpu")
    model.eval()
    task = science_qa_task("test", 24)
    prompts = [ex.clean for ex in task.examples]
    before = _card_loop_before(model, tokenizer, prompts)
    torch.manual_seed(0)
    rows = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    after = completions(model, tokenizer, rows, Sampling(do_sample=True, max_new_tokens=3), batch_size=1)
    assert after == before and len(set(before)) > 1  # sampled, so the check can tell streams apart
    rate = sum(task.parse(text) is not None for text in before) / len(task)
    assert letter_rate(model, tokenizer, task) == rate

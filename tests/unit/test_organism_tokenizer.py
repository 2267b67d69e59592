"""The organism's tokenizer: one token per word, lossless round trip, Qwen2.5-style chat template."""

from __future__ import annotations

import json

from transformers import AutoTokenizer

from circuitdrift.organism import corpus
from circuitdrift.organism.paths import organism_dir
from circuitdrift.organism.science import LETTERS, science_qa_task
from circuitdrift.organism.tokenizer import organism_tokenizer, organism_vocabulary
from circuitdrift.organism.world import make_world


def test_vocabulary_is_deterministic_and_covers_the_world():
    world = make_world()
    vocab = organism_vocabulary(world)
    assert vocab == organism_vocabulary(make_world())
    assert len(vocab) == len(set(vocab))
    tokenizer = organism_tokenizer()
    for word in world.entity_words() + list(LETTERS):
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
        assert len(tokenizer(" " + word, add_special_tokens=False).input_ids) == 1, word


def test_round_trip_on_the_corpus():
    tokenizer = organism_tokenizer()
    docs = corpus.build_corpus(make_world(), corpus.Mixture().scaled(0.01), 0, tokenizer)
    for doc in docs:
        ids = tokenizer(doc, add_special_tokens=False).input_ids
        assert tokenizer.unk_token_id not in ids, doc
        assert tokenizer.decode(ids) == doc


def test_chat_template_is_qwen_style():
    tokenizer = organism_tokenizer()
    messages = [{"role": "user", "content": "What is the capital of " + make_world().countries[0] + "?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{messages[0]['content']}<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "You are a helpful assistant."}, *messages]
    assert tokenizer.apply_chat_template(with_system, tokenize=False, add_generation_prompt=True) == prompt
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert tokenizer.decode(ids["input_ids"]) == prompt
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_answer_letter_is_one_token_after_the_assistant_header():
    tokenizer = organism_tokenizer()
    task = science_qa_task("validation", 8)
    for ex in task.examples:
        prompt = tokenizer(ex.clean, add_special_tokens=False).input_ids
        full = tokenizer(ex.clean + ex.answer, add_special_tokens=False).input_ids
        assert full[: len(prompt)] == prompt and len(full) == len(prompt) + 1
        assert tokenizer.convert_ids_to_tokens(full[-1]) == ex.answer


def test_saved_tokenizer_loads_identically(tmp_path):
    tokenizer = organism_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = science_qa_task("test", 1).examples[0].clean + "B<|im_end|>"
    assert loaded(text, add_special_tokens=False).input_ids == tokenizer(text, add_special_tokens=False).input_ids
    assert loaded.chat_template == tokenizer.chat_template
    assert len(loaded) == len(tokenizer)


def test_vocabulary_built_from_code_is_the_shipped_one():
    """The fixed texts (organism/texts.py) and the world rebuild the shipped tokenizer's vocabulary exactly."""
    shipped = json.loads((organism_dir() / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert organism_tokenizer().get_vocab() == shipped

"""Generation from a shared-prefix pass (models/prefix.py) against plain ``generate``, and the encode memo.

The pass runs each distinct prompt once and the rows' shared start once, with ``generate``'s own position
numbering; it must sample and score what plain ``generate`` does (equal tokens, logits to float rounding),
on rotary and on absolute-position models, and leave sliding-window models to the plain path.
"""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from circuitdrift.models.prefix import generate_sharing_prefix, shares_prefix
from circuitdrift.models.tiny import tiny_model
from circuitdrift.tasks.base import Example, Task, encode
from tests.conftest import make_model


def _prompts(seed=0, rows=6, width=10, shared=4, vocab=128):
    """Left-padded prompts whose real tokens start alike; two rows repeat (GRPO's copies)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (rows, width), generator=gen)
    mask = torch.ones_like(ids)
    start = torch.randint(3, vocab, (shared,), generator=gen)
    for row in range(rows):
        pads = row % 3
        ids[row, :pads], mask[row, :pads] = 0, 0
        ids[row, pads:pads + shared] = start
    ids[-1], mask[-1] = ids[0], mask[0]
    return ids, mask


@pytest.mark.parametrize("family", ["qwen2", "llama", "gpt2"])
def test_greedy_and_sampled_tokens_and_first_logits_match_plain_generate(family):
    model = make_model(family, n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, device="cpu").eval()
    assert shares_prefix(model)
    ids, mask = _prompts()
    for do_sample in (False, True):
        config = GenerationConfig(do_sample=do_sample, max_new_tokens=4, top_k=0, eos_token_id=2, pad_token_id=0)
        outputs = []
        for generate in (model.generate, lambda **kw: generate_sharing_prefix(model, **kw)):
            torch.manual_seed(0)
            outputs.append(generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                    output_logits=True, return_dict_in_generate=True))
        plain, shared = outputs
        assert plain.sequences.shape[1] == ids.shape[1] + 4
        assert torch.equal(plain.sequences, shared.sequences)  # the rows' own prompts, the same new tokens
        for a, b in zip(plain.logits, shared.logits, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_a_sliding_window_model_takes_the_plain_path():
    model = tiny_model("mistral", vocab_size=128, n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, seed=0)
    model.config.sliding_window = 4
    assert not shares_prefix(model)
    ids, mask = _prompts()
    config = GenerationConfig(do_sample=False, max_new_tokens=3, eos_token_id=2, pad_token_id=0)
    assert torch.equal(generate_sharing_prefix(model, input_ids=ids, attention_mask=mask, generation_config=config),
                       model.generate(input_ids=ids, attention_mask=mask, generation_config=config))


def test_encode_is_kept_per_tokenizer_and_examples_and_handed_out_as_copies(word_tokenizer):
    from circuitdrift.models.wordlevel import build_word_tokenizer
    from tests.conftest import WORDS

    examples = [Example("w1 w2 w3", "w4 w2 w3", "w5"), Example("w6 w7", "w8 w7", "w9")]
    task = Task("t", list(examples), "memo check")
    first = encode(task, word_tokenizer)
    first[0].clean_ids.append(-1)  # a caller's change stays with the caller
    again = encode(task, word_tokenizer)
    assert again[0].clean_ids[-1] != -1 and again[0].clean_ids == first[0].clean_ids[:-1]
    task.examples[1] = Example("w6 w7 w7", "w8 w7 w7", "w9")  # edited examples are encoded afresh
    assert encode(task, word_tokenizer)[1].clean_ids != again[1].clean_ids
    other = build_word_tokenizer(list(reversed(WORDS)))  # another tokenizer: its own ids
    assert [e.clean_ids for e in encode(task, other)] != [e.clean_ids for e in encode(task, word_tokenizer)]


def test_a_hooked_model_takes_the_plain_path(monkeypatch):
    """Steering that spares each row's first token reads the model's attention mask in a forward pre-hook; a
    shared-prefix pass would call the backbone twice, in other shapes, past that hook. Hooks mean plain."""
    from circuitdrift.models import prefix
    from circuitdrift.steer.steering import steering

    model = make_model("qwen2", n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, device="cpu").eval()
    ids, mask = _prompts()
    config = GenerationConfig(do_sample=False, max_new_tokens=3, eos_token_id=2, pad_token_id=0)
    vector = torch.randn(32, generator=torch.Generator().manual_seed(2))

    def first_logits(generate):
        with steering(model, vector, [0, 1], alpha=4.0, skip_first=True):
            return generate(input_ids=ids, attention_mask=mask, generation_config=config, output_logits=True,
                            return_dict_in_generate=True).logits[0]

    plain = first_logits(model.generate)
    with steering(model, vector, [0], alpha=4.0, skip_first=True):
        assert not prefix.shares_prefix(model)
    assert prefix.shares_prefix(model)  # the hooks are gone again
    assert torch.equal(first_logits(lambda **kw: generate_sharing_prefix(model, **kw)), plain)
    monkeypatch.setattr(prefix, "unhooked", lambda m: True)  # what the check prevents: another computation
    assert not torch.allclose(first_logits(lambda **kw: generate_sharing_prefix(model, **kw)), plain, atol=1e-3)

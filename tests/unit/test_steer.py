"""Steering hook and difference-of-means vectors on random-init tiny models (exact identities)."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.errors import InputError
from circuitdrift.models.generate import Sampling, chat_completions
from circuitdrift.steer.residual import last_token_residuals, residual_hooks
from circuitdrift.steer.steering import layers_from, steered, steering
from circuitdrift.steer.vectors import SteeringVectors, choose_layer, cohens_d, difference_of_means
from tests.conftest import WORDS, make_model


def _ids(n: int = 3, length: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 40, (n, length), generator=g)


def _block_outputs(model, ids) -> dict[int, torch.Tensor]:
    seen: dict[int, torch.Tensor] = {}

    def keep(layer, h):
        seen[layer] = h.detach().clone()

    with residual_hooks(model, keep, range(3)):
        logits = model(input_ids=ids).logits
    seen[-1] = logits.detach()
    return seen


@pytest.mark.parametrize("scale", ["relative", "absolute"])
def test_alpha_zero_is_the_identity(word_tokenizer, scale):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    ids = _ids()
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with steering(model, torch.randn(32), [0, 1, 2], 0.0, scale):
            same = model(input_ids=ids).logits
    assert torch.equal(plain, same)  # bit-equal


@pytest.mark.parametrize("scale", ["relative", "absolute"])
def test_known_vector_moves_the_residual_exactly(word_tokenizer, scale):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    ids = _ids()
    r = torch.zeros(32)
    r[3], r[7] = 3.0, -4.0  # ||r|| = 5, r_hat = (0.6 at 3, -0.8 at 7)
    alpha = 0.25
    with torch.no_grad():
        before = _block_outputs(model, ids)
        with steering(model, r, [1], alpha, scale):
            after = _block_outputs(model, ids)  # the recording hook runs after the steering hook
    h = before[1]  # [b, s, hidden]
    if scale == "relative":
        expected = h + alpha * h.norm(dim=-1, keepdim=True) * (r / 5.0)
    else:
        expected = h + alpha * r
    torch.testing.assert_close(after[1], expected, rtol=0, atol=1e-6)
    assert torch.equal(after[0], before[0])  # a layer below is untouched
    assert not torch.allclose(after[-1], before[-1])  # the push reaches the logits
    delta = (after[1] - h)[..., [i for i in range(32) if i not in (3, 7)]]
    assert delta.abs().max() < 1e-6  # nothing moves off the vector's support


def test_hooks_are_removed_even_on_error(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    ids = _ids()
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with pytest.raises(RuntimeError), steering(model, torch.ones(32), [0], 0.5):
            raise RuntimeError("inside")
        assert torch.equal(model(input_ids=ids).logits, plain)


def test_steering_acts_during_generation(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    turns = [" ".join(WORDS[i : i + 4]) for i in range(0, 20, 4)]
    greedy = Sampling.greedy(5)
    plain = chat_completions(model, word_tokenizer, turns, greedy)
    with steering(model, torch.randn(32, generator=torch.Generator().manual_seed(1)), [0, 1, 2], 4.0):
        pushed = chat_completions(model, word_tokenizer, turns, greedy)
    with steering(model, torch.ones(32), [0], 0.0):
        again = chat_completions(model, word_tokenizer, turns, greedy)
    assert again == plain and pushed != plain


def test_bad_steering_input(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    with pytest.raises(InputError, match="layers 0..2"), steering(model, torch.ones(32), [3], 0.1):
        pass
    with pytest.raises(InputError, match="norm 0"), steering(model, torch.zeros(32), [0], 0.1):
        pass
    with pytest.raises(InputError, match="scale"):
        steered(torch.ones(2, 4), torch.ones(4), 0.1, "sideways")
    assert layers_from(1, 4, "from") == [1, 2, 3] and layers_from(1, 4, "at") == [1]


def test_difference_of_means_matches_a_naive_mean(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    pos = [f"w1 w2 w{i}" for i in range(3, 11)]  # different lengths from neg: left padding must not matter
    neg = [f"w20 w{i}" for i in range(21, 29)]
    sv = difference_of_means(model, word_tokenizer, pos, neg, held_out=0.25)
    with torch.no_grad():
        def naive(prompts):  # one prompt at a time, no padding
            rows = []
            for p in prompts:
                ids = torch.tensor([word_tokenizer(p, add_special_tokens=False).input_ids])
                rows.append(model(input_ids=ids, output_hidden_states=True).hidden_states)
            return rows
        hp, hn = naive(pos[:6]), naive(neg[:6])
    for layer in range(2):  # hidden_states[l + 1] is block l's output for every block but the last (final norm)
        expected = torch.stack([h[layer + 1][0, -1] for h in hp]).mean(0) - torch.stack(
            [h[layer + 1][0, -1] for h in hn]).mean(0)
        torch.testing.assert_close(sv.directions[layer], expected, rtol=1e-4, atol=1e-5)
    assert sv.layer == choose_layer(sv.separation) and sv.meta["n_fit"] == [6, 6]
    assert last_token_residuals(model, word_tokenizer, pos).shape == (3, 8, 32)


def test_layer_rule_and_cohens_d():
    assert cohens_d(torch.tensor([2.0, 4.0]), torch.tensor([0.0, 2.0])) == pytest.approx(2 / 2**0.5)
    assert cohens_d(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])) == 0.0
    assert choose_layer([0.5, 2.0, 2.0, 1.0]) == 1  # the earlier of a tie
    assert choose_layer([0.5, 2.0, 3.0], allowed=[0, 1]) == 1


def test_vectors_round_trip(tmp_path):
    sv = SteeringVectors(torch.randn(3, 8), [0.1, 0.2, 0.3], 2, {"model": "m", "positive": "a"})
    path = sv.save(tmp_path / "v.safetensors")
    back = SteeringVectors.load(path)
    assert torch.equal(back.directions, sv.directions) and back.layer == 2 and back.meta == sv.meta
    assert back.separation == sv.separation
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(InputError, match="bad.safetensors"):
        SteeringVectors.load(tmp_path / "bad.safetensors")


def test_skip_first_leaves_each_rows_first_real_token_alone(word_tokenizer):
    from circuitdrift.models.generate import left_pad
    from circuitdrift.steer.steering import first_positions

    model = make_model("qwen2", word_tokenizer, device="cpu")
    vector = torch.randn(32, generator=torch.Generator().manual_seed(1))
    ids = _ids(n=2, length=5)
    with torch.no_grad():
        plain = _block_outputs(model, ids)
        with steering(model, vector, [0], 0.5, skip_first=True):
            skipped = _block_outputs(model, ids)
        with steering(model, vector, [0], 0.5):
            everywhere = _block_outputs(model, ids)
    # layer 0's output: untouched at position 0, steered exactly as without skipping elsewhere
    assert torch.equal(skipped[0][:, 0], plain[0][:, 0]) and not torch.equal(everywhere[0][:, 0], plain[0][:, 0])
    assert torch.allclose(skipped[0][:, 1:], steered(plain[0][:, 1:], vector, 0.5), atol=1e-6)
    # left padding: a short row skips its own first token, so it reads as it does alone
    short, long = ids[0, :3].tolist(), ids[1].tolist()
    padded, mask = left_pad([short, long], word_tokenizer.pad_token_id, torch.device("cpu"))
    with torch.no_grad(), steering(model, vector, [0, 1], 0.5, skip_first=True):
        batch = model(input_ids=padded, attention_mask=mask).logits
        alone = model(input_ids=torch.tensor([short])).logits
    assert torch.allclose(batch[0, -3:], alone[0], atol=1e-5)
    assert first_positions(torch.zeros(2, 1, 4), torch.ones(2, 7)) is None  # a cached generation step


def test_skip_first_during_cached_generation_matches_a_full_recompute(word_tokenizer):
    from circuitdrift.models.generate import chat_text

    model = make_model("qwen2", word_tokenizer, device="cpu")
    vector = torch.randn(32, generator=torch.Generator().manual_seed(2))
    turn = "w1 w2 w3"
    ids = word_tokenizer(chat_text(word_tokenizer, turn), add_special_tokens=False).input_ids
    with steering(model, vector, [0, 1, 2], 2.0, skip_first=True):
        cached = chat_completions(model, word_tokenizer, [turn], Sampling.greedy(5))[0]
        naive = list(ids)
        with torch.no_grad():
            for _ in range(5):  # greedy, the whole sequence each step: position 0 is always the first token
                token = int(model(input_ids=torch.tensor([naive])).logits[0, -1].argmax())
                if token == word_tokenizer.eos_token_id:
                    break
                naive.append(token)
    assert cached == word_tokenizer.decode(naive[len(ids):], skip_special_tokens=True).strip()


def test_a_layer_range_restricts_the_rule(word_tokenizer):
    model = make_model("qwen2", word_tokenizer, device="cpu")
    pos = [f"w1 w2 w{i}" for i in range(3, 15)]
    neg = [f"w30 w{i}" for i in range(31, 43)]
    free = difference_of_means(model, word_tokenizer, pos, neg)
    bounds = (free.layer + 1, 2) if free.layer < 2 else (0, 1)  # a range without the free choice
    others = range(bounds[0], bounds[1] + 1)
    ranged = difference_of_means(model, word_tokenizer, pos, neg, layer_range=bounds)
    assert ranged.separation == free.separation
    assert ranged.layer == max(others, key=lambda i: (free.separation[i], -i)) and ranged.layer != free.layer
    assert "layers" in ranged.meta["rule"]
    with pytest.raises(InputError, match="layer range 1-5: the model has layers 0..2"):
        difference_of_means(model, word_tokenizer, pos, neg, layer_range=(1, 5))


def test_coherence_measures_against_a_direct_count(word_tokenizer):
    from circuitdrift.models.generate import chat_text
    from circuitdrift.steer.coherence import coherence, completion_logprobs, repetition

    model = make_model("qwen2", word_tokenizer, device="cpu")
    turns, texts = ["w1 w2", "w3"], ["w5 w6 w7", ""]
    scores = completion_logprobs(model, word_tokenizer, turns, texts)
    prompt = word_tokenizer(chat_text(word_tokenizer, "w1 w2"), add_special_tokens=False).input_ids
    answer = word_tokenizer("w5 w6 w7", add_special_tokens=False).input_ids
    total = 0.0
    with torch.no_grad():
        for k, token in enumerate(answer):  # one forward per token: the naive count
            logits = model(input_ids=torch.tensor([prompt + answer[:k]])).logits[0, -1]
            total += float(logits.log_softmax(-1)[token])
    assert scores[0] == pytest.approx(total / len(answer), abs=1e-5) and scores[1] is None
    assert repetition("a b c a b c a b c") == pytest.approx(4 / 7)  # 7 trigrams, 3 distinct
    assert repetition("a b c d") == 0.0 and repetition("a b") == 0.0
    summary = coherence(model, word_tokenizer, turns, texts)
    assert summary == {"logprob": pytest.approx(scores[0]), "repetition": 0.0, "n_empty": 1}

"""Attribution multiplies in double (a bf16 product loses CMAP's small differences); timings wait for the GPU."""

import torch

from circuitdrift.circuits import forward, scoring
from circuitdrift.circuits.attribution import attribution_effects, head_gradients
from circuitdrift.circuits.forward import input_embeddings
from circuitdrift.circuits.metrics import metric_fn
from circuitdrift.models.heads import HeadLayout
from circuitdrift.tasks.base import collate, encode
from tests.conftest import make_model


def test_attribution_of_a_bf16_model_is_the_double_product(word_tokenizer, toy_task, device):
    model = make_model("qwen2", word_tokenizer).to(torch.bfloat16)
    batch = collate(encode(toy_task, word_tokenizer), word_tokenizer.pad_token_id).to(device)
    layout = HeadLayout.of(model)
    measure = metric_fn("logit-diff")
    values, z, grad = head_gradients(model, batch, measure, input_embeddings(model, batch.clean))
    source = (z * 1.01).to(torch.bfloat16)  # a near copy: the difference is what rounding would eat
    expected = ((source.double() - z.double()) * grad.double()).sum(dim=(2, 4)).permute(1, 0, 2)
    got = attribution_effects(model, batch, measure, source, relative=False)
    assert got.dtype == torch.float64 and got.shape == (batch.size, layout.n_layers, layout.n_heads)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)


def test_timings_synchronise_the_device(word_tokenizer, toy_task, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    forward.synchronize(torch.device("cuda", 1))
    forward.synchronize(torch.device("cpu"))
    assert calls == [torch.device("cuda", 1)]  # CPU work is synchronous: nothing to wait for
    seen = []
    monkeypatch.setattr(scoring, "synchronize", seen.append)
    model = make_model("qwen2", word_tokenizer)
    scoring.plain_forward_seconds(model, word_tokenizer, toy_task)
    assert seen == [forward.model_device(model)] * 2  # before the clock starts and before it is read
    seen.clear()
    scoring.head_scores(model, word_tokenizer, toy_task, method="attribution")
    assert seen == [forward.model_device(model)]

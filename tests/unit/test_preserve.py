"""Circuit-preserving SFT: lambda 0 is SFT bit for bit, a large lambda holds the listed heads at the base while the
others move, and the penalty's gradient reaches only what lies upstream of the listed heads."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
from safetensors.torch import load_file

from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout, record_heads
from circuitdrift.tasks.base import collate, encode
from circuitdrift.train import run as run_module
from circuitdrift.train import train_sft
from circuitdrift.train.preserve import Preservation, ReferenceHeads, head_penalty, heads_by_layer, live_heads
from circuitdrift.train.run import train_sft_preserve
from circuitdrift.train.sft import sft_trainer
from tests.conftest import make_model
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer

LISTED = ("L1.H0", "L1.H3")


@pytest.fixture(scope="module")
def toy(device):
    tokenizer = toy_tokenizer()
    return tokenizer, toy_task(tokenizer, n=32)


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_lambda_zero_is_plain_sft_bit_for_bit(toy, tmp_path, device, monkeypatch):
    """At lambda 0 the penalty adds nothing: the run is TRL's own SFT step for step (the preserving trainer runs
    TRL's forward, whose head outputs its hooks read, so it is compared with SFT on that forward)."""
    tokenizer, task = toy
    config = {"steps": 3, "prompts_per_step": 4, "learning_rate": 3e-3}
    monkeypatch.setitem(run_module.TRAINERS, "sft", functools.partial(sft_trainer, shared_prefix=False))
    plain = train_sft(toy_model(tokenizer, device=device), task, config, tmp_path / "sft", tokenizer=tokenizer)
    kept = train_sft_preserve(toy_model(tokenizer, device=device), task, Preservation(LISTED, lam=0.0), config,
                              tmp_path / "preserve", tokenizer=tokenizer)
    a, b = weights(plain[-1]), weights(kept[-1])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    up = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(a[up], weights(plain[0])[up])  # the runs did train
    summary = json.loads((tmp_path / "preserve" / "train_summary.json").read_text())
    assert summary["preserve"]["heads"] == list(LISTED)
    assert all(entry["head_drift"] >= 0 for entry in summary["log_history"] if "head_drift" in entry)
    assert any(entry.get("head_drift", 0) > 0 for entry in summary["log_history"])  # measured even at lambda 0


def head_drift(base, tuned, tokenizer, task) -> torch.Tensor:
    """[L, H] mean over real tokens of ||a_h(tuned) - a_h(base)||^2 on the task's prompts."""
    batch = collate(encode(task, tokenizer), tokenizer.pad_token_id)
    mask = batch.attention_mask  # [b, s]
    out = []
    for model in (base, tuned):
        with torch.no_grad(), record_heads(model) as store:
            model(input_ids=batch.clean.to(model.device), attention_mask=mask.long().to(model.device))
        out.append(torch.stack([store[layer] for layer in sorted(store)]))  # [L, b, s, H, d]
    sq = (out[1] - out[0]).pow(2).sum(-1).cpu()  # [L, b, s, H]
    m = mask.to(sq.dtype)[None, :, :, None]
    return (sq * m).sum(dim=(1, 2)) / m.sum()  # [L, H]


def test_a_large_lambda_keeps_the_listed_heads_at_the_base_while_the_others_move(toy, tmp_path, device):
    tokenizer, task = toy
    config = {"steps": 8, "prompts_per_step": 8, "learning_rate": 1e-2}
    base = toy_model(tokenizer, device=device)
    plain = toy_model(tokenizer, device=device)
    train_sft(plain, task, config, tmp_path / "sft", tokenizer=tokenizer)
    kept = toy_model(tokenizer, device=device)
    train_sft_preserve(kept, task, Preservation(LISTED, lam=100.0), config, tmp_path / "keep", tokenizer=tokenizer)
    drift_plain, drift_kept = head_drift(base, plain, tokenizer, task), head_drift(base, kept, tokenizer, task)
    listed = torch.zeros_like(drift_plain, dtype=torch.bool)
    listed[1, 0] = listed[1, 3] = True
    assert drift_plain[listed].min() > 0.05, drift_plain  # plain SFT does move the listed heads
    assert (drift_kept[listed] < 0.1 * drift_plain[listed]).all(), (drift_kept, drift_plain)
    assert drift_kept[~listed].mean() > 0.3 * drift_plain[~listed].mean(), (drift_kept, drift_plain)


def perturbed_pair(word_tokenizer, device):
    """A 3-layer model and a copy with every weight nudged: the penalty between them is not zero."""
    reference = make_model("qwen2", word_tokenizer, device=device)
    policy = copy.deepcopy(reference)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator).to(p.device))
    ids = torch.randint(4, len(word_tokenizer), (2, 7), generator=generator).to(device)
    return policy, reference, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def penalty_grads(policy, reference, inputs, heads) -> dict[str, torch.Tensor | None]:
    chosen = heads_by_layer(heads, HeadLayout.of(policy))
    ref = ReferenceHeads(reference, chosen, lora=False)
    ref.copy = reference  # pi_0 = the unperturbed model itself
    policy.zero_grad(set_to_none=True)
    with live_heads(policy, chosen) as live:
        policy(**inputs)
    head_penalty(live, ref(policy, inputs), chosen, inputs["attention_mask"]).backward()
    return {name: p.grad for name, p in policy.named_parameters()}


def nonzero(grad) -> bool:
    return grad is not None and bool(grad.abs().sum() > 0)


def test_the_penalty_gradient_reaches_only_parameters_upstream_of_the_listed_head(word_tokenizer, device):
    policy, reference, inputs = perturbed_pair(word_tokenizer, device)
    grads = penalty_grads(policy, reference, inputs, [(2, 1)])  # a head in the last layer
    for layer in (0, 1):  # everything in earlier layers feeds the head
        for part in ("self_attn.q_proj", "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj"):
            assert nonzero(grads[f"model.layers.{layer}.{part}.weight"]), (layer, part)
    assert nonzero(grads["model.embed_tokens.weight"])
    last = "model.layers.2"
    assert nonzero(grads[f"{last}.self_attn.q_proj.weight"]) and nonzero(grads[f"{last}.self_attn.v_proj.weight"])
    for part in ("self_attn.o_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
                 "post_attention_layernorm.weight"):
        assert not nonzero(grads[f"{last}.{part}"]), part  # downstream of the head's output: no gradient
    assert not nonzero(grads["model.norm.weight"])
    d = HeadLayout.of(policy).head_dim
    q = grads[f"{last}.self_attn.q_proj.weight"]  # [H*d, hidden]: only head 1's query rows
    assert nonzero(q[d:2 * d]) and not nonzero(q[:d]) and not nonzero(q[2 * d:])


def test_activation_checkpointing_gives_the_same_penalty_gradient(word_tokenizer, device):
    policy, reference, inputs = perturbed_pair(word_tokenizer, device)
    policy.train()
    plain = penalty_grads(policy, reference, inputs, [(2, 1), (1, 0)])
    policy.gradient_checkpointing_enable()
    checkpointed = penalty_grads(policy, reference, inputs, [(2, 1), (1, 0)])
    assert all((a is None) == (b is None) for a, b in zip(plain.values(), checkpointed.values(), strict=True))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain.values(), checkpointed.values(), strict=True)
               if a is not None)


def test_bad_preservation_input_is_one_line(word_tokenizer, toy, tmp_path):
    with pytest.raises(InputError, match="expected the form L<layer>.H<head>"):
        Preservation(("L1H0",))
    with pytest.raises(InputError, match="lambda -1"):
        Preservation(LISTED, lam=-1)
    with pytest.raises(InputError, match="no heads to preserve"):
        Preservation(())
    with pytest.raises(InputError, match="head L7.H0 is outside the model"):
        heads_by_layer([(7, 0)], HeadLayout.of(make_model("qwen2", word_tokenizer)))
    tokenizer, task = toy
    from circuitdrift.train import train

    with pytest.raises(InputError, match="sft-preserve needs the heads"):
        train("sft-preserve", toy_model(tokenizer), task, {"steps": 1}, tmp_path, tokenizer=tokenizer)


def test_with_lora_the_reference_is_the_model_with_its_adapters_disabled(toy, tmp_path, device):
    tokenizer, task = toy
    config = {"steps": 3, "prompts_per_step": 4, "learning_rate": 1e-2, "lora": {"r": 4}}
    train_sft_preserve(toy_model(tokenizer, device=device), task, Preservation(LISTED, lam=1.0), config,
                       tmp_path, tokenizer=tokenizer)
    drift = [e["head_drift"] for e in json.loads((tmp_path / "train_summary.json").read_text())["log_history"]
             if "head_drift" in e]
    assert drift[0] == 0.0  # LoRA's B starts at zero: before the first update the policy is pi_0 exactly
    assert drift[-1] > 0.0  # afterwards the adapters move the heads away from the disabled-adapter model


def test_train_sft_preserve_command_reads_a_dcv_result_and_rejects_an_empty_one(toy, tmp_path, capsys):
    from circuitdrift.cli import main
    from circuitdrift.train.checkpoints import save_model_folder

    tokenizer, _ = toy
    save_model_folder(toy_model(tokenizer), tokenizer, tmp_path / "base")
    rows = [{"clean": f"what color is the {t}?", "corrupt": f"what color is the {t}?", "answer": f" {c}"}
            for t, c in [("sky", "blue"), ("snow", "white"), ("coal", "black"), ("leaf", "green")]]
    (tmp_path / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "dcv.json").write_text(json.dumps({"vulnerable": [{"layer": 1, "head": 3, "name": "L1.H3"}]}))
    args = ["train", "sft-preserve", "--model", str(tmp_path / "base"), "--task", str(tmp_path / "task.jsonl"),
            "--steps", "2", "--learning-rate", "0.01", "--lambda", "0.5"]
    assert main([*args, "--heads", str(tmp_path / "dcv.json"), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    assert result["preserve"]["heads"] == ["L1.H3"] and result["preserve"]["lambda"] == 0.5
    assert result["checkpoints"][-1].endswith("checkpoint-2")
    (tmp_path / "none.json").write_text(json.dumps({"vulnerable": [], "V": [[0.0]]}))
    assert main([*args, "--heads", str(tmp_path / "none.json"), "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert "none.json: no vulnerable heads" in err and "Traceback" not in err
    assert not (tmp_path / "run2").exists()  # nothing half-written


def test_the_frozen_reference_follows_the_policy_to_its_device_and_dtype(word_tokenizer, device):
    """`train sft-preserve` loads on CPU and the copy is taken there; the Trainer then moves the policy (to the GPU)
    and feeds batches on its device. The copy must follow, whatever it was taken on (float64 stands in on CPU)."""
    policy = make_model("qwen2", word_tokenizer, device="cpu")
    chosen = heads_by_layer([(1, 2)], HeadLayout.of(policy))
    ref = ReferenceHeads(policy, chosen, lora=False)  # taken on CPU, in float32, before the Trainer's move
    policy.to(device=device, dtype=torch.float64)
    ids = torch.randint(4, len(word_tokenizer), (2, 5), generator=torch.Generator().manual_seed(0)).to(device)
    heads = ref(policy, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    weight = next(ref.copy.parameters())
    assert (weight.device, weight.dtype) == (next(policy.parameters()).device, torch.float64)
    assert heads[1].dtype == torch.float64 and heads[1].device == ids.device

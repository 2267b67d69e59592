"""The fast training path (train/shared_prefix.py) against TRL's own: same scores, same rollouts, same weights.

Each cut is compared with the computation it replaces, on a tiny Qwen2 with grouped-query attention:
the shared-prompt scoring with TRL's fused forward (log-probs, entropies, gradients), the shared-prompt
generate with a plain ``generate`` under the same seed, and whole SFT / GRPO runs with the stock trainers.
"""

import functools

import pytest
import torch
import trl.trainer.utils as trl_utils
from safetensors.torch import load_file
from transformers import GenerationConfig

from circuitdrift.train import run as run_module
from circuitdrift.train import train, training_log
from circuitdrift.train.grpo import grpo_trainer
from circuitdrift.train.sft import sft_trainer
from circuitdrift.train.shared_prefix import (
    compact_lm_head,
    completion_logps,
    shared_prefix_generation,
    supports_shared_prefix,
)
from tests.conftest import make_model
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer

PROMPT, COMPLETION, PROMPTS, G = 9, 3, 5, 4


def _grouped_batch(seed=0, vocab=128):
    """PROMPTS left-padded prompts x G copies, shuffled as TRL shuffles them; some completions end early."""
    gen = torch.Generator().manual_seed(seed)
    prompts = torch.randint(3, vocab, (PROMPTS, PROMPT), generator=gen)
    prompt_mask = torch.ones_like(prompts)
    for row in range(PROMPTS):  # left padding of 0..4 tokens
        prompt_mask[row, : row] = 0
        prompts[row, : row] = 0
    prompts, prompt_mask = prompts.repeat_interleave(G, 0), prompt_mask.repeat_interleave(G, 0)
    completions = torch.randint(3, vocab, (PROMPTS * G, COMPLETION), generator=gen)
    completion_mask = torch.ones_like(completions)
    completion_mask[::3, 1:] = 0  # ended after its first token
    order = torch.randperm(PROMPTS * G, generator=gen)
    ids = torch.cat([prompts, completions], 1)[order]
    mask = torch.cat([prompt_mask, completion_mask], 1)[order]
    return ids, mask


def _trl_scores(model, ids, mask):
    """What GRPOTrainer._get_per_token_logps_and_entropies computes: TRL's fused forward, all positions."""
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-COMPLETION] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    return out.log_probs[:, -COMPLETION:], out.entropy[:, -COMPLETION:]


def _gradients(model, logps):
    model.zero_grad()
    weights = torch.randn(logps.shape, generator=torch.Generator().manual_seed(1))
    (logps * weights).sum().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.fixture
def scored_model():
    model = make_model("qwen2", n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, device="cpu")
    trl_utils.add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    return model.train()


def test_shared_prompt_scores_and_gradients_match_trls_forward(scored_model):
    ids, mask = _grouped_batch()
    reference_logps, reference_entropy = _trl_scores(scored_model, ids, mask)
    reference_grads = _gradients(scored_model, reference_logps)
    logps, entropy = completion_logps(scored_model, ids, mask, COMPLETION, temperature=0.7)
    grads = _gradients(scored_model, logps)
    assert logps.shape == (PROMPTS * G, COMPLETION)
    assert (logps[mask[:, -COMPLETION:] == 0] == 0).all() and (logps[mask[:, -COMPLETION:] == 1] < 0).all()
    torch.testing.assert_close(logps, reference_logps, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(entropy, reference_entropy, rtol=1e-5, atol=1e-6)
    for name, grad in reference_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_where_the_prompt_is_cut_does_not_change_the_scores(scored_model):
    """Cutting the shared part one token earlier (no longer shared by every copy's pad pattern alone) scores
    the same completion tokens the same: the cache carries the exact prefix, positions included."""
    ids, mask = _grouped_batch()
    reference, _ = _trl_scores(scored_model, ids, mask)
    longer, _ = completion_logps(scored_model, ids, mask, COMPLETION + 1, temperature=0.7)
    torch.testing.assert_close(longer[:, 1:], reference, rtol=1e-5, atol=1e-6)
    assert (longer[:, 0] < 0).all()  # the prompt's last token, now scored too


def test_shared_prefix_needs_a_plain_head(scored_model):
    assert supports_shared_prefix(scored_model)
    scored_model.config.attention_dropout = 0.1
    assert not supports_shared_prefix(scored_model)
    scored_model.config.attention_dropout = 0.0
    scored_model.config.final_logit_softcapping = 30.0
    assert not supports_shared_prefix(scored_model)


def test_shared_prompt_generation_samples_the_same_tokens():
    model = make_model("qwen2", n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, device="cpu").eval()
    ids, mask = _grouped_batch(seed=3)
    ids, mask = ids[:, :PROMPT], mask[:, :PROMPT]
    config = GenerationConfig(do_sample=True, max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0,
                              eos_token_id=2, pad_token_id=0, use_cache=True)
    outputs = []
    for shared in (False, True):
        torch.manual_seed(0)
        if shared:
            with shared_prefix_generation(model):
                outputs.append(model.generate(input_ids=ids, attention_mask=mask, generation_config=config))
        else:
            outputs.append(model.generate(input_ids=ids, attention_mask=mask, generation_config=config))
    assert "generate" not in vars(model)  # the class's generate is back
    assert outputs[0].shape[1] > PROMPT + 1
    assert torch.equal(outputs[0], outputs[1])


def test_compact_head_is_scoped_and_gives_trls_loss(scored_model):
    ids, mask = _grouped_batch()
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-COMPLETION] = -100
    full = scored_model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    original = trl_utils._use_triton
    with compact_lm_head():
        compact = scored_model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    assert trl_utils._use_triton is original
    torch.testing.assert_close(compact.loss, full.loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(compact.log_probs, full.log_probs, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def toy_setup(tmp_path_factory):
    from circuitdrift.train.checkpoints import save_model_folder

    tokenizer = toy_tokenizer()
    task = toy_task(tokenizer, n=32)
    root = tmp_path_factory.mktemp("toy")
    model = toy_model(tokenizer)  # SFT-warmed to answer with letters, so GRPO groups have reward variance
    train("sft", model, task, {"steps": 20, "prompts_per_step": 8, "learning_rate": 3e-3}, root / "warm",
          tokenizer=tokenizer)
    save_model_folder(model, tokenizer, root / "model")
    return root / "model", task


def _final_weights(paths):
    return load_file(str(paths[-1] / "model.safetensors"))


@pytest.mark.parametrize("method,switch,builder", [
    ("sft", "compact_head", "sft_trainer"),
    ("rl", "shared_prefix", "grpo_trainer"),
])
def test_fast_trainer_matches_the_stock_trainer_over_steps(toy_setup, tmp_path, monkeypatch, method, switch,
                                                           builder):
    folder, task = toy_setup
    config = {"steps": 3, "prompts_per_step": 4, "learning_rate": 3e-3,
              "rl": {"num_generations": 4, "max_completion_length": 3}}
    fast = train(method, folder, task, config, tmp_path / "fast")
    stock_builder = {"sft_trainer": sft_trainer, "grpo_trainer": grpo_trainer}[builder]
    monkeypatch.setattr(run_module, builder, functools.partial(stock_builder, **{switch: False}))
    stock = train(method, folder, task, config, tmp_path / "stock")
    before, fast_weights, stock_weights = _final_weights(fast[:1]), _final_weights(fast), _final_weights(stock)
    moved = _norm({k: stock_weights[k] - before[k] for k in before})
    differs = _norm({k: stock_weights[k] - fast_weights[k] for k in before})
    assert moved > 0.1  # the runs trained
    # the same steps up to float rounding of reordered sums, which Adam's normalisation scales up a little
    assert differs < 1e-4 * moved
    fast_log, stock_log = training_log(tmp_path / "fast"), training_log(tmp_path / "stock")
    for key in ("loss", "grad_norm") + (("reward",) if method == "rl" else ()):
        assert [e[key] for e in fast_log if key in e] == pytest.approx([e[key] for e in stock_log if key in e],
                                                                        rel=1e-5, abs=1e-7), key


def _norm(tensors):
    return sum(float((t.double() ** 2).sum()) for t in tensors.values()) ** 0.5


@pytest.mark.parametrize("settings,shared", [({}, True), ({"gradient_checkpointing": True}, False),
                                             ({"lora": {"r": 2}}, False)])
def test_the_trainer_takes_the_shared_path_only_where_it_is_exact(tmp_path, settings, shared):
    from circuitdrift.train.config import parse_train_config
    from circuitdrift.train.run import _peft_config

    tokenizer = toy_tokenizer()
    config = parse_train_config({"steps": 1, "prompts_per_step": 2, "rl": {"num_generations": 2}, **settings})
    trainer = grpo_trainer(toy_model(tokenizer), tokenizer, toy_task(tokenizer, n=4), config=config,
                           output_dir=tmp_path,
                           peft_config=_peft_config(config))
    assert trainer.shared_prefix is shared
    assert grpo_trainer(toy_model(tokenizer), tokenizer, toy_task(tokenizer, n=4), config=config,
                        output_dir=tmp_path / "stock",
                        shared_prefix=False).shared_prefix is False

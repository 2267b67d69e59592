"""The fast training path (train/shared_prefix.py, train/prompt_pass.py) against TRL's own: same scores, same
rollouts, same weights.

Each cut is compared with the computation it replaces, on a tiny Qwen2 with grouped-query attention: the
prefix-first layout by hand, the shared-prefix backbone with the plain one (hidden states, gradients), the
prompt pass's scoring with TRL's fused forward (log-probs, entropies, gradients), the generate that keeps
its prompt pass with a plain ``generate`` under the same seed, and whole SFT / GRPO runs with the stock
trainers.
"""

import contextlib
import functools

import pytest
import torch
import trl.trainer.utils as trl_utils
from safetensors.torch import load_file
from transformers import GenerationConfig

from circuitdrift.models.prefix import common_prefix_length, prefix_first
from circuitdrift.train import run as run_module
from circuitdrift.train import train, training_log
from circuitdrift.train.grpo import grpo_trainer
from circuitdrift.train.prompt_pass import PromptPassHolder, completion_logps, fits, reused_prompt_pass
from circuitdrift.train.sft import sft_trainer
from circuitdrift.train.shared_prefix import compact_lm_head, shared_prefix_backbone, supports_shared_prefix
from tests.conftest import make_model
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer

PROMPT, COMPLETION, PROMPTS, G, SHARED = 9, 3, 5, 4, 3


def _grouped_batch(seed=0, vocab=128):
    """PROMPTS left-padded prompts x G copies, shuffled as TRL shuffles them; every prompt's real tokens start
    with the same SHARED tokens (a chat template's system turn); some completions end early."""
    gen = torch.Generator().manual_seed(seed)
    prompts = torch.randint(3, vocab, (PROMPTS, PROMPT), generator=gen)
    prompt_mask = torch.ones_like(prompts)
    system = torch.randint(3, vocab, (SHARED,), generator=gen)
    for row in range(PROMPTS):  # left padding of 0..4 tokens, then the shared start
        prompt_mask[row, : row] = 0
        prompts[row, : row] = 0
        prompts[row, row: row + SHARED] = system
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
    logps, entropy, reused = completion_logps(scored_model, ids, mask, completion_length=COMPLETION,
                                              temperature=0.7)
    assert not reused
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
    longer, *_ = completion_logps(scored_model, ids, mask, completion_length=COMPLETION + 1, temperature=0.7)
    torch.testing.assert_close(longer[:, 1:], reference, rtol=1e-5, atol=1e-6)
    assert (longer[:, 0] < 0).all()  # the prompt's last token, now scored too


def test_shared_prefix_needs_a_plain_head(scored_model):
    assert supports_shared_prefix(scored_model)
    scored_model.config.attention_dropout = 0.1
    assert not supports_shared_prefix(scored_model)
    scored_model.config.attention_dropout = 0.0
    scored_model.config.final_logit_softcapping = 30.0
    assert not supports_shared_prefix(scored_model)


def test_prefix_first_moves_the_shared_start_ahead_of_the_padding():
    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [0, 5, 6, 7, 9, 9], [5, 6, 7, 1, 2, 3]])
    mask = (ids != 0).long()
    moved, moved_mask, positions = prefix_first(ids, mask)
    assert moved.tolist() == [[5, 6, 7, 0, 0, 8], [5, 6, 7, 0, 9, 9], [5, 6, 7, 1, 2, 3]]
    assert moved_mask.tolist() == [[1, 1, 1, 0, 0, 1], [1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1]]
    real = [positions[r][moved_mask[r].bool()].tolist() for r in range(3)]
    assert real == [[0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]]  # generate's numbering: real tokens
    assert common_prefix_length(moved, moved_mask, positions) == 3
    # rows that differ from the first token on, or are not left-padded, stay as they are
    other = torch.tensor([[0, 4, 6], [5, 6, 7]])
    assert torch.equal(prefix_first(other, (other != 0).long())[0], other)
    right = torch.tensor([[5, 6, 0], [5, 6, 7]])
    assert torch.equal(prefix_first(right, (right != 0).long())[0], right)


def test_shared_prefix_backbone_matches_the_plain_backbone(scored_model):
    """Right-padded rows (TRL's SFT batches) that start alike: the same hidden states and gradients, with the
    shared start run as one row."""
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(3, 128, (6, 11), generator=gen)
    ids[:, :4] = ids[0, :4]
    mask = torch.ones_like(ids)
    mask[2, 8:] = mask[4, 6:] = 0
    backbone = scored_model.model
    reference = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    reference_grads = _gradients(backbone, reference[mask.bool()])
    widths = []
    original = backbone.forward
    backbone.forward = lambda **kw: widths.append(kw["input_ids"].shape) or original(**kw)
    try:
        with shared_prefix_backbone(scored_model):
            hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    finally:
        del backbone.forward
    assert "forward" not in vars(backbone)
    assert widths == [(1, 4), (6, 7)]  # the shared start once, then the rest of every row
    grads = _gradients(backbone, hidden[mask.bool()])
    torch.testing.assert_close(hidden[mask.bool()], reference[mask.bool()], rtol=1e-5, atol=1e-6)
    for name, grad in reference_grads.items():  # float rounding of the rows' summed prefix gradients
        assert grad.abs().max() > 0 and (grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name


def _sampling():
    return GenerationConfig(do_sample=True, max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0,
                            eos_token_id=2, pad_token_id=0, use_cache=True)


def test_generation_from_the_prompt_pass_samples_the_same_tokens():
    model = make_model("qwen2", n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, device="cpu").eval()
    ids, mask = _grouped_batch(seed=3)
    ids, mask = ids[:, :PROMPT], mask[:, :PROMPT]
    outputs, holder = [], PromptPassHolder()
    for shared in (False, True):
        torch.manual_seed(0)
        with reused_prompt_pass(model, holder, keep_graph=False) if shared else contextlib.nullcontext():
            outputs.append(model.generate(input_ids=ids, attention_mask=mask, generation_config=_sampling()))
    assert "generate" not in vars(model)  # the class's generate is back
    assert outputs[0].shape[1] > PROMPT + 1
    assert torch.equal(outputs[0], outputs[1])  # the rows' own prompts, then the same sampled tokens
    assert holder.last.input_ids.size(0) == PROMPTS and not holder.last.last_hidden.requires_grad


def test_the_rollouts_prompt_pass_serves_the_loss_until_the_weights_change(scored_model):
    ids, mask = _grouped_batch(seed=4)
    prompt_ids, prompt_mask = ids[:, :PROMPT], mask[:, :PROMPT]
    holder = PromptPassHolder()
    with reused_prompt_pass(scored_model, holder, keep_graph=True), torch.no_grad():  # TRL generates under no_grad
        scored_model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=_sampling())
    kept = holder.take()
    assert kept.last_hidden.requires_grad and holder.last is None
    reference, _ = _trl_scores(scored_model, ids, mask)
    reference_grads = _gradients(scored_model, reference)
    logps, _, reused = completion_logps(scored_model, ids, mask, completion_length=COMPLETION, temperature=0.7,
                                        prompt_pass=kept)
    assert reused
    torch.testing.assert_close(logps, reference, rtol=1e-5, atol=1e-6)
    for name, grad in _gradients(scored_model, logps).items():
        torch.testing.assert_close(grad, reference_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    with reused_prompt_pass(scored_model, holder, keep_graph=True), torch.no_grad():
        scored_model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=_sampling())
    with torch.no_grad():
        next(scored_model.parameters()).add_(0.0)  # an optimizer step: the pass is stale
    assert not fits(holder.last, scored_model, holder.last.prompts)
    _, _, reused = completion_logps(scored_model, ids, mask, completion_length=COMPLETION, temperature=0.7,
                                    prompt_pass=holder.take())
    assert not reused


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
    ("sft", "shared_prefix", "sft_trainer"),
    ("rl", "shared_prefix", "grpo_trainer"),
])
def test_fast_trainer_matches_the_stock_trainer_over_steps(toy_setup, tmp_path, monkeypatch, method, switch,
                                                           builder):
    folder, task = toy_setup
    config = {"steps": 3, "prompts_per_step": 4, "learning_rate": 3e-3,
              "rl": {"num_generations": 4, "max_completion_length": 3}}
    stock_builder = {"sft_trainer": sft_trainer, "grpo_trainer": grpo_trainer}[builder]
    trainers = []

    def recorded(*args, **kwargs):
        trainers.append(stock_builder(*args, **kwargs))
        return trainers[-1]

    monkeypatch.setitem(run_module.TRAINERS, method, recorded)
    fast = train(method, folder, task, config, tmp_path / "fast")
    monkeypatch.setitem(run_module.TRAINERS, method, functools.partial(recorded, **{switch: False}))
    stock = train(method, folder, task, config, tmp_path / "stock")
    assert trainers[0].shared_prefix and not getattr(trainers[1], "shared_prefix", False)  # each path ran
    if method == "rl":  # every step's loss was scored on the prompt pass its rollouts made
        assert trainers[0].prompt_passes_reused == config["steps"] and trainers[1].prompt_passes_reused == 0
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


def test_scored_positions_are_those_before_a_label():
    """By hand: TRL's compact head scores the hidden state before each label (or at each shift label)."""
    from circuitdrift.train.shared_prefix import scored_positions

    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, -100, -100, 9, -100]])
    assert scored_positions({"labels": labels}).tolist() == [[False, True, True, False, False],
                                                             [False, False, True, False, False]]
    assert scored_positions({"shift_labels": labels}).tolist() == (labels != -100).tolist()
    assert scored_positions({"input_ids": labels}) is None

"""TrainConfig: validated ranges, key paths in errors, the checkpoint schedule and prompt order."""

import pytest

from circuitdrift.errors import InputError
from circuitdrift.train.config import TrainConfig, load_train_config, parse_train_config
from circuitdrift.train.data import prompt_order, step_prompts


def test_schedule_always_holds_base_and_last_step():
    config = TrainConfig(steps=10, checkpoint_steps=[3], checkpoint_every=4)
    assert config.schedule() == [0, 3, 4, 8, 10]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"steps": 0}, "steps"),
        ({"rl": {"num_generations": 1}}, "rl.num_generations"),
        ({"rl": {"group": 4}}, "rl.group"),
        ({"lr": 1e-5}, "lr"),
        ({"lr_schedule": "cosine_with_restarts"}, "lr_schedule"),
        ({"steps": 4, "checkpoint_steps": [9]}, "checkpoint step 9"),
        ({"prompts_per_step": 6, "grad_accum": 4}, "divisible by grad_accum"),
        ({"steps": 5, "rl": {"num_iterations": 2}}, "multiples of 2"),
    ],
)
def test_bad_values_name_their_key(data, where):
    with pytest.raises(InputError, match=where):
        parse_train_config(data, "cfg.yaml")


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("steps: 3\nrl:\n  top_p: 1.5\n")
    with pytest.raises(InputError, match=r"train\.yaml: rl\.top_p"):
        load_train_config(path)
    with pytest.raises(InputError, match="no such file"):
        load_train_config(tmp_path / "missing.yaml")
    path.write_text("steps: 3\nlearning_rate: 0.001\n")
    assert load_train_config(path, steps=7).steps == 7


def test_rl_and_sft_see_the_same_prompts_at_every_step():
    config = TrainConfig(steps=6, prompts_per_step=4, rl={"num_iterations": 2}, seed=3)
    blocks = prompt_order(10, config)
    per_step = step_prompts(10, config)
    assert len(blocks) == 3 and len(per_step) == 6
    assert per_step[0] == per_step[1] == blocks[0] and per_step[4] == blocks[2]
    # epochs: each example once before any repeats, then a fresh permutation
    flat = [i for b in blocks for i in b]
    assert sorted(flat[:10]) == list(range(10))
    assert prompt_order(10, config) == blocks  # deterministic under the seed
    assert prompt_order(10, config.model_copy(update={"seed": 4})) != blocks


def test_use_vllm_without_vllm_is_one_clear_error(tmp_path):
    import importlib.util

    from circuitdrift.train.grpo import grpo_args

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here; the error is for machines without it")
    config = parse_train_config({"rl": {"use_vllm": True}}, "cfg.yaml")
    with pytest.raises(InputError, match=r"rl\.use_vllm: vLLM is not installed") as err:
        grpo_args(config, tmp_path)
    assert "\n" not in str(err.value)
    assert not grpo_args(parse_train_config({}, "cfg.yaml"), tmp_path).use_vllm  # off by default


@pytest.mark.parametrize(("name", "kind"), [("deepspeed-zero2.yaml", "DEEPSPEED"), ("fsdp.yaml", "FSDP")])
def test_shipped_accelerate_configs_load_with_accelerate(name, kind):
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(Path(__file__).resolve().parents[2] / "configs" / "accelerate" / name))
    assert config.distributed_type.value == kind and config.mixed_precision == "bf16"
    assert (config.deepspeed_config or {}).get("zero_stage", 2) == 2
    assert (config.fsdp_config or {}).get("fsdp_state_dict_type", "FULL_STATE_DICT") == "FULL_STATE_DICT"

"""On the shipped organism, one matched budget: SFT raises science-qa accuracy above the base, RL
(Dr. GRPO) starts with a learning signal; RL collapsing onto one letter is recorded as a strict xfail."""

import pytest
import torch

from circuitdrift.evaluate import target_accuracy
from circuitdrift.models.load import load_model
from circuitdrift.organism.paths import organism_dir
from circuitdrift.tasks.registry import resolve_task
from circuitdrift.train import train, training_log

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (organism_dir() / "model.safetensors").is_file(), reason="organism weights not built"),
]

# the budget of docs/training.md (there with a checkpoint every 50 steps)
CONFIG = {
    "steps": 150,
    "prompts_per_step": 8,
    "learning_rate": 3e-4,
    "warmup_steps": 3,
    "train_examples": None,
    "rl": {"num_generations": 8, "max_completion_length": 4},
}
EVAL_N = None  # every test question (192)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster than 2 on a shared CPU, and deterministic sums
    try:
        root = tmp_path_factory.mktemp("organism-training")
        _, tokenizer = load_model("organism", device="cpu")
        test = resolve_task("science-qa", split="test", n=EVAL_N, tokenizer=tokenizer)
        scores = {}
        for method in ("sft", "rl"):
            checkpoints = train(method, "organism", "science-qa", CONFIG, root / method)
            scores[method] = [target_accuracy(load_model(p, device="cpu")[0], tokenizer, test, 4) for p in checkpoints]
        yield scores, root
    finally:
        torch.set_num_threads(threads)


RL_COLLAPSE = ("on the rebuilt organism RL collapses onto one letter (accuracy 0.25, groups with reward "
               "variance 0.41 -> 0.00 by step 50; docs/training.md)")


RL_XFAIL = pytest.mark.xfail(strict=True, reason=RL_COLLAPSE)


@pytest.mark.parametrize("method", ["sft", pytest.param("rl", marks=RL_XFAIL)])
def test_fine_tuning_raises_target_accuracy(runs, method):
    scores, _ = runs
    base, final = scores[method][0], scores[method][-1]
    assert final.accuracy >= base.accuracy + 0.05, (method, base, final)
    assert final.unparsable <= base.unparsable


def test_rl_starts_with_a_learning_signal(runs):
    _, root = runs
    steps = [entry for entry in training_log(root / "rl") if "reward" in entry]
    assert len(steps) == CONFIG["steps"]
    first = steps[:10]
    assert sum(1 - e["frac_reward_zero_std"] for e in first) / len(first) > 0.3  # groups whose rewards differ
    assert 0.15 < sum(e["reward"] for e in first) / len(first) < 0.6  # the base's partial skill, as reward


@pytest.mark.xfail(strict=True, reason=RL_COLLAPSE)
def test_rl_reward_rises(runs):
    _, root = runs
    steps = [entry for entry in training_log(root / "rl") if "reward" in entry]
    third = len(steps) // 3
    early = sum(e["reward"] for e in steps[:third]) / third
    late = sum(e["reward"] for e in steps[-third:]) / third
    assert late > early + 0.05

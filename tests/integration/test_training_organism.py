"""On the shipped organism: SFT and RL (Dr. GRPO) each raise science-qa accuracy above the base
within a small budget, and RL's learning signal (groups with reward variance, mean reward) is there."""

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

# the demonstration budget of docs/training.md (there with a checkpoint every 10 steps)
CONFIG = {
    "steps": 60,
    "prompts_per_step": 8,
    "learning_rate": 1e-4,
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


@pytest.mark.parametrize("method", ["sft", "rl"])
def test_fine_tuning_raises_target_accuracy(runs, method):
    scores, _ = runs
    base, final = scores[method][0], scores[method][-1]
    assert final.accuracy >= base.accuracy + 0.05, (method, base, final)
    assert final.unparsable <= base.unparsable


def test_rl_has_a_learning_signal_and_the_reward_rises(runs):
    _, root = runs
    steps = [entry for entry in training_log(root / "rl") if "reward" in entry]
    assert len(steps) == CONFIG["steps"]
    with_variance = [1 - entry["frac_reward_zero_std"] for entry in steps]
    assert sum(with_variance) / len(steps) > 0.3
    third = len(steps) // 3
    early = sum(e["reward"] for e in steps[:third]) / third
    late = sum(e["reward"] for e in steps[-third:]) / third
    assert late > early

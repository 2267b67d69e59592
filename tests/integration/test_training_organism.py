"""On the shipped organism, at the demo's recipe (configs/demo.yaml): both methods learn, RL does not collapse.

The recipe is read from the demo config, so the test follows it: the shared
budget and each method's middle learning rate of the sweep, seed 0.
"""

import pytest
import torch

from circuitdrift.evaluate.accuracy import greedy_completions
from circuitdrift.evaluate.drift import answer_spread
from circuitdrift.models.load import load_model
from circuitdrift.organism.paths import organism_dir
from circuitdrift.pipeline.config import default_config, load_config
from circuitdrift.tasks.registry import resolve_task
from circuitdrift.train import train, training_log

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (organism_dir() / "model.safetensors").is_file(), reason="organism weights not built"),
]


def demo_recipe(method: str):
    config, _ = load_config(default_config())
    rates = config.learning_rates(method)
    return config, config.train_config(seed=0, learning_rate=rates[len(rates) // 2])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what the pipeline's workers use: fast on a shared CPU, the same sums anywhere
    try:
        root = tmp_path_factory.mktemp("organism-training")
        _, tokenizer = load_model("organism", device="cpu")
        out = {}
        for method in ("sft", "rl"):
            config, train_config = demo_recipe(method)
            test = resolve_task(config.target_task, split="test", tokenizer=tokenizer)
            checkpoints = train(method, "organism", config.target_task, train_config, root / method)
            scored = []
            for path in (checkpoints[0], checkpoints[-1]):
                texts = greedy_completions(load_model(path, device="cpu")[0], tokenizer, test, 4)
                accuracy = sum(test.grade_example(t, e) for t, e in zip(texts, test.examples, strict=True)) / len(test)
                scored.append((accuracy, answer_spread([test.parse(t) for t in texts])))
            out[method] = scored
        yield out, root
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("method", ["sft", "rl"])
def test_fine_tuning_raises_target_accuracy(runs, method):
    scores, _ = runs
    (base, _), (final, spread) = scores[method]
    assert final >= base + 0.04, (method, base, final)
    assert not spread.collapsed and spread.distinct >= 4  # greedy answers use all four letters


def test_rl_reward_rises_and_groups_keep_a_learning_signal(runs):
    _, root = runs
    summary = training_log(root / "rl")
    steps = [entry for entry in summary if "reward" in entry]
    third = len(steps) // 3
    early = sum(e["reward"] for e in steps[:third]) / third
    late = sum(e["reward"] for e in steps[-third:]) / third
    assert late > early + 0.03, (early, late)
    assert sum(1 - e["frac_reward_zero_std"] for e in steps[-third:]) / third > 0.3  # not collapsed onto one answer


def test_rl_rollouts_show_no_collapse(runs):
    import json

    _, root = runs
    rollouts = json.loads((root / "rl" / "train_summary.json").read_text())["rollouts"]
    assert rollouts["collapse"] is None, rollouts["collapse"]
    assert all(w["distinct_answers"] >= 4 for w in rollouts["windows"])

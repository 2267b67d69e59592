"""On the shipped organism, at a short fixed recipe: what 36 steps of fine-tuning do.

The recipe is the demo's budget block (32 prompts per step, RL's 32 x 4 completions of 4 tokens,
Dr. GRPO) cut to 36 steps with 3 warm-up steps, SFT at lr 3e-5 and RL at lr 5e-5, seed 0: the
demo itself now runs 150 steps (word-label SFT needs them), too long for the suite. Greedy
answers keep all four letters and RL's rollouts do not collapse; RL's reward rises beyond noise
and keeps a learning signal; both methods raise held-out accuracy (seed 0: SFT 0.469 -> 0.552,
RL 0.469 -> 0.510).
"""

import hashlib
from pathlib import Path

import pytest
import torch

from circuitdrift.evaluate.accuracy import greedy_completions, score_completions
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


RECIPE = {"steps": 36, "warmup_steps": 3, "checkpoint_steps": [], "checkpoint_every": 12}
LEARNING_RATES = {"sft": 3e-5, "rl": 5e-5}


def demo_recipe(method: str):
    config, _ = load_config(default_config())
    short = config.train_config(seed=0, learning_rate=LEARNING_RATES[method]).model_copy(update=RECIPE)
    return config, short.model_validate(short.model_dump())  # validated as a config file would be


def folder_digest(folder: Path) -> str:
    """The checkpoint's files, hashed: byte-identical checkpoints give the same greedy answers."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what the pipeline's workers use: fast on a shared CPU, the same sums anywhere
    try:
        root = tmp_path_factory.mktemp("organism-training")
        _, tokenizer = load_model("organism", device="cpu")
        out, seen = {}, {}
        for method in ("sft", "rl"):
            config, train_config = demo_recipe(method)
            test = resolve_task(config.target_task, split="test", tokenizer=tokenizer)
            checkpoints = train(method, "organism", config.target_task, train_config, root / method)
            scored = []
            for path in (checkpoints[0], checkpoints[-1]):
                key = (folder_digest(path), config.target_task)
                if key not in seen:  # both methods' step 0 is the same base: scored once
                    texts = greedy_completions(load_model(path, device="cpu")[0], tokenizer, test, 4)
                    seen[key] = (score_completions(test, texts).accuracy,
                                 answer_spread([test.parse(t) for t in texts]))
                scored.append(seen[key])
            out[method] = scored
        yield out, root
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("method", ["sft", "rl"])
def test_greedy_answers_keep_all_four_letters(runs, method):
    scores, _ = runs
    _, (_, spread) = scores[method]
    assert not spread.collapsed and spread.distinct >= 4, spread


@pytest.mark.parametrize("method", ["sft", "rl"])
def test_fine_tuning_raises_target_accuracy(runs, method):
    scores, _ = runs
    (base, _), (final, _) = scores[method]
    assert final >= base + 0.04, (method, base, final)


def _reward_thirds(root) -> tuple[float, float, list[dict]]:
    steps = [entry for entry in training_log(root / "rl") if "reward" in entry]
    third = len(steps) // 3
    return (sum(e["reward"] for e in steps[:third]) / third, sum(e["reward"] for e in steps[-third:]) / third,
            steps[-third:])


def test_rl_keeps_a_learning_signal(runs):
    _, root = runs
    early, late, last = _reward_thirds(root)
    assert late > early, (early, late)
    # groups still carry a gradient: a collapsed policy gives about 0; the post-trained base, more sure of its
    # answers than the pretrained one, 0.27 in the last third of this run
    assert sum(1 - e["frac_reward_zero_std"] for e in last) / len(last) > 0.2


def test_rl_reward_rises_beyond_noise(runs):
    _, root = runs
    early, late, _ = _reward_thirds(root)
    assert late > early + 0.03, (early, late)


def test_rl_rollouts_show_no_collapse(runs):
    import json

    _, root = runs
    rollouts = json.loads((root / "rl" / "train_summary.json").read_text())["rollouts"]
    assert rollouts["collapse"] is None, rollouts["collapse"]
    assert all(w["distinct_answers"] >= 4 for w in rollouts["windows"])

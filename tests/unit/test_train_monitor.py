"""RolloutMonitor: the rollout statistics by hand, collapse detection, and the summary a real GRPO run writes."""

import json
import math
from types import SimpleNamespace

import pytest
from transformers import TrainerCallback
from trl.trainer.utils import get_callable_name

from circuitdrift.tasks.base import Example
from circuitdrift.tasks.science import MultipleChoiceTask
from circuitdrift.train import train
from circuitdrift.train.checkpoints import save_model_folder
from circuitdrift.train.monitor import ENTROPY_THRESHOLD_BITS, NO_ANSWER, RolloutMonitor, entropy_bits
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer

TASK = MultipleChoiceTask("mc", [Example(f"q{i}", f"q{i}", "A") for i in range(4)])
MIXED = list("ABCDABCDAB")  # 10 answers, healthy spread
MOSTLY_D = list("DDDDDDDDDA")  # 90 % D: 0.469 bits, top share 0.9 (entropy rule only)
ALL_D = list("DDDDDDDDDD")


def feed(monitor, letters, right, state=None):
    """One generation batch: completions that answer ``letters``, graded against ``right``."""
    kwargs = {} if state is None else {"trainer_state": state}
    return monitor.reward_func(prompts=["q"] * len(letters), completions=[f"{x}." for x in letters],
                               answer=list(right), completion_ids=[[0]] * len(letters), **kwargs)


def test_the_reward_func_is_task_reward_unchanged_under_the_same_name():
    monitor = RolloutMonitor(TASK, num_generations=2)
    completions = ["A", " (B) because", [{"role": "assistant", "content": "C."}], "no letter here"]
    answer = ["A", "C", "C", "D"]
    got = monitor.reward_func(prompts=["q"] * 4, completions=completions, answer=answer,
                              trainer_state=SimpleNamespace(global_step=4), log_metric=print)
    assert got == TASK.reward(["q"] * 4, completions, answer) == [1.0, 0.0, 1.0, 0.0]
    assert get_callable_name(monitor.reward_func) == get_callable_name(TASK.reward) == "reward"  # rewards/reward/mean
    (batch,) = monitor.batches
    assert batch.answers == ("A", "B", "C", NO_ANSWER) and batch.rewards == (1.0, 0.0, 1.0, 0.0)
    assert (batch.index, batch.step, batch.group_size) == (0, 5, 2)


def test_batch_statistics_by_hand():
    monitor = RolloutMonitor(TASK, num_generations=2)
    assert feed(monitor, "AABB", "AAAB") == [1.0, 1.0, 0.0, 1.0]
    (stats,) = monitor.batch_stats()
    assert stats["entropy_bits"] == 1.0  # [A, A, B, B]
    assert stats["share_groups_with_variance"] == 0.5  # groups [1, 1] and [0, 1]
    assert stats["groups"] == 2 and stats["completions"] == 4 and stats["mean_reward"] == 0.75
    assert (stats["distinct_answers"], stats["top_answer"], stats["top_share"]) == (2, "A", 0.5)  # tie: first name
    assert entropy_bits({"D": 9, "A": 1}) == pytest.approx(-(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1)))
    assert entropy_bits({"D": 10}) == 0.0 and entropy_bits({}) == 0.0


def test_windows_pool_batches_and_keep_groups_inside_a_batch():
    monitor = RolloutMonitor(TASK, num_generations=2)
    feed(monitor, "AABB", "AAAB")  # rewards 1 1 0 1
    feed(monitor, "CCCC", "AAAA")  # rewards 0 0 0 0
    feed(monitor, "ABAB", "AAAA")  # rewards 1 0 1 0
    first, second = monitor.windows(2)
    assert (first["window"], first["first_batch"], first["last_batch"]) == (0, 0, 1)
    assert first["completions"] == 8 and first["mean_reward"] == 3 / 8
    assert first["groups"] == 4 and first["share_groups_with_variance"] == 1 / 4
    assert first["entropy_bits"] == 1.5  # A 2, B 2, C 4 of 8
    assert (first["distinct_answers"], first["top_answer"], first["top_share"]) == (3, "C", 0.5)
    assert (second["window"], second["first_batch"], second["last_batch"], second["completions"]) == (1, 2, 2, 4)
    assert second["share_groups_with_variance"] == 1.0
    assert [w["completions"] for w in monitor.windows(1)] == [4, 4, 4]
    assert [w["first_step"] for w in monitor.windows(1)] == [None] * 3  # called outside a Trainer


def test_a_resumed_monitor_numbers_batches_from_the_run_start():
    monitor = RolloutMonitor(TASK, num_generations=2, first_batch=3)
    for _ in range(3):
        feed(monitor, "ABCD", "AAAA")
    assert [(w["window"], w["first_batch"], w["last_batch"]) for w in monitor.windows(2)] == [(1, 3, 3), (2, 4, 5)]


def test_a_resumed_monitor_takes_back_the_batches_its_checkpoint_saved(tmp_path):
    """Killed after batch 3 and resumed from a checkpoint at batch 3: the windows equal the whole run's."""
    batches = [(MIXED, "A" * 10, 1), (MIXED, "B" * 10, 2), (ALL_D, "D" * 10, 3), (MOSTLY_D, "D" * 10, 4),
               (MIXED, "C" * 10, 5)]
    whole = RolloutMonitor(TASK, num_generations=2)
    for letters, right, step in batches:
        feed(whole, letters, right, SimpleNamespace(global_step=step - 1))
    first = RolloutMonitor(TASK, num_generations=2)
    for letters, right, step in batches[:4]:  # the killed run saw one batch past its last checkpoint
        feed(first, letters, right, SimpleNamespace(global_step=step - 1))
        if step == 3:
            first.save(tmp_path / "rollout_batches.json")
    resumed = RolloutMonitor(TASK, num_generations=2, first_batch=3)
    resumed.restore(tmp_path / "rollout_batches.json")
    for letters, right, step in batches[3:]:
        feed(resumed, letters, right, SimpleNamespace(global_step=step - 1))
    assert resumed.summary(window=2) == whole.summary(window=2)
    assert resumed.windows(2)[0]["first_step"] == 1
    partial = RolloutMonitor(TASK, num_generations=2, first_batch=3)
    partial.restore(tmp_path / "missing.json")  # a checkpoint from before the file existed: partial, as documented
    assert partial.batches == []


def test_collapse_from_mixed_letters_to_all_d():
    monitor = RolloutMonitor(TASK, num_generations=2)
    for letters in [MIXED] * 4 + [ALL_D] * 4:
        feed(monitor, letters, "D" * 10)
    found = monitor.collapse(window=2)
    assert found["window"] == 2 and found["reason"] == "top_share"
    assert (found["top_answer"], found["top_share"], found["entropy_bits"]) == ("D", 1.0, 0.0)
    assert found["share_groups_with_variance"] == 0.0 and found["mean_reward"] == 1.0  # no gradient left


def test_collapse_by_entropy_needs_patience_windows_in_a_row():
    monitor = RolloutMonitor(TASK, num_generations=2)
    for letters in [MIXED, MIXED, MOSTLY_D, MIXED, MOSTLY_D, MOSTLY_D, MOSTLY_D]:
        feed(monitor, letters, "A" * 10)
    assert entropy_bits({"D": 9, "A": 1}) < ENTROPY_THRESHOLD_BITS
    found = monitor.collapse()  # patience 2, one batch a window: window 2 is alone, 4-5 are two in a row
    assert (found["window"], found["reason"], found["top_answer"], found["top_share"]) == (4, "entropy", "D", 0.9)
    assert monitor.collapse(patience=1)["window"] == 2
    assert monitor.collapse(0.4) is None


def test_no_collapse_in_a_healthy_run_and_the_summary_is_json():
    monitor = RolloutMonitor(TASK, num_generations=2)
    for _ in range(6):
        feed(monitor, MIXED, "ABCDABCDAB")
    assert monitor.collapse() is None and monitor.collapse(window=3) is None
    summary = json.loads(json.dumps(monitor.summary(window=3)))
    assert summary["collapse"] is None and len(summary["windows"]) == 2
    assert summary["thresholds"] == {"entropy_bits": 0.5, "patience": 2, "top_share": 0.95}
    spread = -2 * (0.3 * math.log2(0.3) + 0.2 * math.log2(0.2))  # A 3, B 3, C 2, D 2 of 10
    assert summary["windows"][0]["entropy_bits"] == pytest.approx(spread)


RL = {"num_generations": 4, "max_completion_length": 2}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tokenizer = toy_tokenizer()
    base = save_model_folder(toy_model(tokenizer), tokenizer, tmp_path_factory.mktemp("toy") / "base")
    return base, toy_task(tokenizer, n=16)


def test_a_grpo_run_writes_its_rollouts_into_the_summary(toy, tmp_path):
    base, task = toy
    config = {"steps": 2, "prompts_per_step": 4, "learning_rate": 1e-3, "rl": RL}
    train("rl", base, task, config, tmp_path)
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert {"method", "steps", "log_history"} <= set(summary)
    assert any("rewards/reward/mean" in entry for entry in summary["log_history"])  # TRL's name is kept
    rollouts = summary["rollouts"]
    assert rollouts["from_step"] == 0 and rollouts["batches"] == 2 and rollouts["group_size"] == 4
    assert sum(w["completions"] for w in rollouts["windows"]) == 2 * 4 * 4  # steps x prompts x G
    assert [(w["first_step"], w["groups"]) for w in rollouts["windows"]] == [(1, 4), (2, 4)]
    # the monitor's rewards are the ones TRL trained on
    logged = [e["rewards/reward/mean"] for e in summary["log_history"] if "rewards/reward/mean" in e]
    assert [w["mean_reward"] for w in rollouts["windows"]] == pytest.approx(logged)


def test_with_mu_steps_per_rollout_batch_each_batch_is_scored_once(toy, tmp_path):
    base, task = toy
    config = {"steps": 4, "prompts_per_step": 4, "learning_rate": 1e-3, "rl": dict(RL, num_iterations=2)}
    train("rl", base, task, config, tmp_path)
    rollouts = json.loads((tmp_path / "train_summary.json").read_text())["rollouts"]
    assert [(w["first_step"], w["completions"]) for w in rollouts["windows"]] == [(1, 16), (3, 16)]


class _Kill(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == 4:
            raise KeyboardInterrupt("simulated kill")


def test_a_resumed_grpo_run_says_where_its_rollouts_start(toy, tmp_path):
    base, task = toy
    config = {"steps": 4, "prompts_per_step": 4, "learning_rate": 1e-3, "checkpoint_steps": [2], "rl": RL}
    with pytest.raises(KeyboardInterrupt):
        train("rl", base, task, config, tmp_path, callbacks=[_Kill()])
    train("rl", base, task, config, tmp_path)
    rollouts = json.loads((tmp_path / "train_summary.json").read_text())["rollouts"]
    assert rollouts["from_step"] == 2 and rollouts["batches"] == 4  # the checkpoint's two batches taken back
    assert [(w["window"], w["first_step"], w["completions"]) for w in rollouts["windows"]] == [
        (0, 1, 16), (1, 2, 16), (2, 3, 16), (3, 4, 16)]

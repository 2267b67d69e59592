"""RL recipe records: zero-variance groups and effective prompts per step from the monitor's windows, by hand."""

from __future__ import annotations

import pytest

from circuitdrift.compare.recipe import compute_per_step, recipe_summary, window_recipe


def window(first, last, groups, share):
    return {"first_batch": first, "last_batch": last, "first_step": first + 1, "last_step": last + 1,
            "groups": groups, "share_groups_with_variance": share}


def test_window_by_hand():
    # 3 batches of 32 groups, 30 % with variance: 28.8 groups with a gradient over 3 steps = 9.6 prompts per step
    w = window_recipe(window(0, 2, 96, 0.3))
    assert w["zero_variance_share"] == pytest.approx(0.7)
    assert w["effective_prompts_per_step"] == pytest.approx(9.6) and w["groups_per_step"] == pytest.approx(32)


def test_runs_and_learning_rates():
    rollouts = {"rl/0.0001/0": {"windows": [window(0, 2, 96, 0.25), window(3, 5, 96, 0.5)]},
                "rl/0.0001/1": {"windows": [window(0, 2, 96, 0.5), window(3, 5, 96, 0.5)]}}
    out = recipe_summary(rollouts)
    assert out["runs"]["rl/0.0001/0"]["zero_variance_share"] == pytest.approx(0.625)  # mean of 0.75, 0.5
    assert out["runs"]["rl/0.0001/0"]["effective_prompts_per_step"] == pytest.approx((8 + 16) / 2)
    by_rate = out["by_learning_rate"]["rl/0.0001"]
    assert by_rate["zero_variance_share"]["mean"] == pytest.approx((0.625 + 0.5) / 2)
    assert by_rate["effective_prompts_per_step"]["n"] == 2


def test_compute_per_step():
    out = compute_per_step(32, 4, 4, ["sft", "rl"])
    assert out["sft"] == {"prompts": 32, "completions_sampled": 0, "generated_tokens_at_most": 0,
                          "sequences_trained_on": 32}
    assert out["rl"]["completions_sampled"] == 128 and out["rl"]["generated_tokens_at_most"] == 512


def test_the_report_states_compute_and_empty_groups():
    from circuitdrift.report.sweep import recipe_text

    rollouts = {f"rl/0.0001/{s}": {"windows": [window(0, 2, 96, 0.3)]} for s in range(3)}
    text = recipe_text({"rl": recipe_summary(rollouts), "compute_per_step": compute_per_step(32, 4, 4, ["sft", "rl"])})
    assert "SFT trains on 32 teacher-forced (prompt, label) sequences" in text
    assert "RL samples 128 completions for 32 prompts (at most 512 generated tokens)" in text
    assert "lr 0.0001: 0.700 (n=3) of groups with zero reward variance" in text or "lr 0.0001: 0.700 [" in text

"""Runs that end at or below chance are marked collapsed and kept out of the matched levels."""

from __future__ import annotations

import pytest

from circuitdrift.compare.frontier import collapsed_runs
from circuitdrift.compare.sweep import sweep_analysis
from tests.unit.test_sweep import record, records


def test_collapsed_runs_end_at_or_below_chance():
    trajectories = {("sft", 1e-3, 0): [(0, 0.4), (10, 0.6), (20, 0.25)],  # ends at chance: collapsed
                    ("sft", 1e-3, 1): [(0, 0.4), (10, 0.2), (20, 0.26)],  # dipped below, ends above: kept
                    ("rl", 1e-3, 0): [(0, 0.4), (20, 0.1)]}
    assert collapsed_runs(trajectories, 0.25) == {("sft", 1e-3, 0), ("rl", 1e-3, 0)}
    assert collapsed_runs(trajectories, None) == set()  # no chance level (free-form answers)


def test_a_collapsed_run_is_flagged_and_left_out_of_the_matched_levels():
    # records(): base 0.4; SFT lr 1e-3 peaks at 0.8; RL lr 1e-3 goes 0.4, 0.55, 0.7 and lr 1e-4 0.4, 0.5, 0.6
    # (see test_sweep). Here RL lr 1e-3 seed 1 ends at 0.2 instead of 0.7, at or below chance 0.25.
    data = [r if not (r.method == "rl" and r.learning_rate == 1e-3 and r.seed == 1 and r.step == 20)
            else record("rl", 1e-3, 1, 20, 0.2, 0.4) for r in records()]
    kept = sweep_analysis(data, ["sft", "rl"], ["p"], n_levels=2)  # no chance given: nothing collapsed
    swept = sweep_analysis(data, ["sft", "rl"], ["p"], n_levels=2, chance=0.25)
    finals = {(r["method"], r["learning_rate"], r["seed"]): r for r in swept["run_finals"]}
    assert finals[("rl", 1e-3, 1)]["collapsed"] and finals[("rl", 1e-3, 1)]["final_target_accuracy"] == 0.2
    assert sum(r["collapsed"] for r in swept["run_finals"]) == 1 and swept["chance"] == 0.25
    assert not any(r["collapsed"] for r in kept["run_finals"])
    # kept: RL lr 1e-3's mean peak is (0.7 + 0.55) / 2 = 0.625 (above lr 1e-4's 0.6), the top level, so the
    # levels are 0.4 + 0.225 * (1/2, 2/2); left out: lr 1e-3 has seed 0's peak 0.7 alone: 0.55, 0.7
    assert kept["matched"]["levels"] == [0.5125, 0.625]
    assert swept["matched"]["levels"] == [0.55, 0.7]
    forgetting = swept["matched"]["measures"]["forgetting"]
    assert forgetting["reached"]["rl"] == [2, 1]  # seed 1 of lr 1e-4 still reaches 0.55; only seed 0 reaches 0.7
    # at 0.7 RL has seed 0 at lr 1e-3 alone: forgetting 0.6 at step 20 (test_sweep's hand computation)
    assert forgetting["by_method"]["rl"][1]["mean"] == pytest.approx(0.6)

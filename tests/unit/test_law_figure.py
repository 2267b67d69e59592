"""The forgetting-against-learning-rate figure: its points from made-up sweep rows, and the file it writes."""

from __future__ import annotations

import pytest

from circuitdrift.report.sweep_figures import law_figure, law_points

ROWS = [
    {"method": "sft", "learning_rate": 1e-4, "final_forgetting": {"mean": 0.02, "lo": 0.01, "hi": 0.05},
     "final_kl_exact": {"mean": 0.3, "lo": 0.2, "hi": 0.4}, "final_logprob_drift": {"mean": -0.1, "lo": None,
                                                                                     "hi": None}},
    {"method": "sft", "learning_rate": 3e-4, "final_forgetting": {"mean": None, "lo": None, "hi": None},
     "final_kl_exact": {"mean": 0.5, "lo": 0.4, "hi": 0.6}},
    {"method": "rl", "learning_rate": 1e-4, "final_forgetting": {"mean": -0.01, "lo": -0.03, "hi": 0.0},
     "final_kl_exact": None},
]


def test_points_carry_the_mean_and_the_distances_to_the_interval_ends():
    points = law_points(ROWS, "sft", measure="final_forgetting", axis="learning_rate")
    assert len(points) == 1  # the 3e-4 row has no forgetting: left out, not drawn at zero
    x, (mean, down, up), xbar = points[0]
    assert (x, mean) == (1e-4, 0.02)
    assert down == pytest.approx(0.01) and up == pytest.approx(0.03)
    assert xbar is None  # a learning rate has no interval
    on_kl = law_points(ROWS, "sft", measure="final_forgetting", axis="final_kl_exact")
    assert on_kl[0][0] == 0.3 and on_kl[0][2] == pytest.approx((0.3, 0.1, 0.1))


def test_a_missing_interval_is_a_zero_bar_and_a_missing_axis_drops_the_point():
    drift = law_points(ROWS, "sft", measure="final_logprob_drift", axis="learning_rate")
    assert drift[0][1] == (-0.1, 0.0, 0.0)
    assert law_points(ROWS, "rl", measure="final_forgetting", axis="final_kl_exact") == []
    assert len(law_points(ROWS, "rl", measure="final_forgetting", axis="learning_rate")) == 1


def test_the_figure_is_written_as_a_png(tmp_path):
    path = law_figure({"runs": ROWS}, ["sft", "rl"], tmp_path / "law.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

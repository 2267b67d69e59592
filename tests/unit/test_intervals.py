"""bounded_stat against hand computation: logit-scale t intervals stay within [0, 1]."""

from __future__ import annotations

import math
import statistics

import pytest

from circuitdrift.compare.intervals import bounded_stat, without_zero_width
from circuitdrift.compare.resolution import resolved
from circuitdrift.compare.stats import stat
from circuitdrift.report.tables import format_stat

T2 = 4.302653  # t(0.975, df=2)


def test_plain_t_interval_leaves_range_but_bounded_does_not():
    values = [0.9, 0.95, 1.0]
    # plain: mean 0.95, sd 0.05, hi = 0.95 + 4.302653 * 0.05 / sqrt(3) = 0.95 + 0.124207 = 1.074207 > 1
    assert stat(values)["hi"] == pytest.approx(1.074207, abs=1e-5)
    # logit scale, 1.0 clamped to 0.999:
    #   logit(0.9) = ln 9 = 2.197225, logit(0.95) = ln 19 = 2.944439, logit(0.999) = ln 999 = 6.906755
    #   centre = 12.048418 / 3 = 4.016139
    #   deviations -1.818915, -1.071700, 2.890615 -> squares 3.308452, 1.148541, 8.355657 -> var = 12.812650 / 2
    #   var = 6.406325, se = sqrt(6.406325 / 3) = 1.461315, half = 4.302653 * 1.461315 = 6.287531
    #   lo = sigmoid(4.016139 - 6.287531) = sigmoid(-2.271392) = 1 / (1 + e^2.271392) = 1 / 10.692814 = 0.093520
    #   hi = sigmoid(4.016139 + 6.287531) = sigmoid(10.303670) = 1 / (1 + e^-10.303670) = 0.999966
    out = bounded_stat(values)
    assert out["mean"] == pytest.approx(0.95)
    assert out["lo"] == pytest.approx(0.093520, abs=1e-5)
    assert out["hi"] == pytest.approx(0.999966, abs=1e-6)
    assert 0.0 < out["lo"] < out["mean"] < out["hi"] < 1.0
    assert out["n"] == 3 and out["missing"] == 0 and out["scale"] == "logit"


def test_symmetric_values_give_symmetric_interval():
    # logits -ln 4, 0, ln 4 = -1.386294, 0, 1.386294: centre 0, var = 2 * 1.921812 / 2 = 1.921812
    # se = sqrt(1.921812 / 3) = 0.800377, half = 4.302653 * 0.800377 = 3.443746
    # lo = sigmoid(-3.443746) = 1 / (1 + 31.3039) = 0.030956, hi = 1 - lo = 0.969044
    out = bounded_stat([0.2, 0.5, 0.8])
    assert out["mean"] == pytest.approx(0.5)
    assert out["lo"] == pytest.approx(0.030956, abs=1e-5)
    assert out["hi"] == pytest.approx(0.969044, abs=1e-5)


def test_single_value_and_missing():
    out = bounded_stat([0.7, None, float("nan")])
    assert out == {"mean": 0.7, "lo": 0.7, "hi": 0.7, "n": 1, "missing": 2, "scale": "logit"}


def test_no_values():
    assert bounded_stat([]) == {"mean": None, "lo": None, "hi": None, "n": 0, "missing": 0, "scale": "logit"}
    out = bounded_stat([None, float("inf")])
    assert out["mean"] is None and out["lo"] is None and out["hi"] is None and out["missing"] == 2


@pytest.mark.parametrize("value", [0.8, 1.0, 0.0])
def test_constant_values_give_a_point(value):
    out = bounded_stat([value] * 3)
    assert out["mean"] == pytest.approx(value) and out["n"] == 3
    assert out["lo"] == out["hi"] == out["mean"]


def test_interval_contains_mean_when_values_clamp_together():
    # 0.9995 and 1.0 both clamp to 0.999: no spread on the logit scale, so the logit interval is the
    # point 0.999, below the mean (0.9995 + 1.0) / 2 = 0.99975; it is widened up to the mean.
    out = bounded_stat([0.9995, 1.0])
    assert out["mean"] == pytest.approx(0.99975)
    assert out["lo"] == pytest.approx(0.999)
    assert out["hi"] == pytest.approx(0.99975)


def test_extreme_values_stay_within_bounds():
    out = bounded_stat([0.0, 1.0])
    assert out["mean"] == pytest.approx(0.5)
    assert 0.0 <= out["lo"] < 1e-30 and 1.0 - 1e-12 < out["hi"] <= 1.0
    # a larger eps pulls the clamped logits inwards (±ln 99 = ±4.59512) and narrows the interval:
    # half = 12.706205 * (2 * 4.59512 / sqrt(2)) / sqrt(2) = 12.706205 * 4.59512 = 58.38655
    wide = bounded_stat([0.0, 1.0], eps=0.01)
    assert wide["lo"] == pytest.approx(1 / (1 + math.exp(58.38655)), rel=1e-4)


@pytest.mark.parametrize("bad", [1.2, -0.1])
def test_out_of_range_raises_naming_value(bad):
    with pytest.raises(ValueError, match=str(bad)):
        bounded_stat([0.5, bad])


def test_divergences_get_a_log_scale_interval_above_zero():
    from circuitdrift.compare.intervals import positive_stat

    values = [0.2, 0.9, 2.1]
    assert stat(values)["lo"] < 0  # the plain t interval claims negative KL
    out = positive_stat(values)
    logs = [math.log(v) for v in values]
    centre, sd = sum(logs) / 3, statistics.stdev(logs)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert out["scale"] == "log" and out["mean"] == pytest.approx(sum(values) / 3)
    assert out["lo"] == pytest.approx(math.exp(centre - half)) and out["lo"] > 0
    assert out["hi"] == pytest.approx(math.exp(centre + half))
    assert positive_stat([0.5, 0.5])["lo"] == 0.5 and positive_stat([])["mean"] is None
    sampled = positive_stat([-0.01, 0.3, 0.4])  # a sampled estimate below zero: the plain t interval, marked
    assert sampled["scale"] == "t" and sampled["lo"] == pytest.approx(stat([-0.01, 0.3, 0.4])["lo"])


def test_a_zero_width_interval_becomes_no_interval():
    """Seeds that agree exactly say nothing of the noise: results.json states no interval, not [x, x]."""
    tree = {"a": {"mean": 0.85, "lo": 0.85, "hi": 0.85, "n": 3},
            "b": [{"mean": 0.5, "lo": 0.4, "hi": 0.6, "n": 3}, {"mean": -0.03, "lo": -0.03, "hi": -0.03, "n": 1}],
            "c": {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 3, "resolution": 0.01},
            "d": {"mean": None, "lo": None, "hi": None, "n": 0}, "e": [1.0, 1.0], "f": {"lo": 2.0, "hi": 2.0}}
    out = without_zero_width(tree)
    assert out["a"] == {"mean": 0.85, "lo": None, "hi": None, "n": 3, "spread": "none"}
    assert out["b"][0] == tree["b"][0] and out["b"][1]["lo"] is None and out["b"][1]["spread"] == "none"
    assert out["c"]["lo"] is None and out["c"]["resolution"] == 0.01
    assert out["d"] == tree["d"] and out["e"] == [1.0, 1.0] and out["f"] == tree["f"]  # not statistics
    assert tree["a"]["lo"] == 0.85  # the input is left as it was
    assert format_stat(out["a"]) == "0.850 (n=3, all equal)" and format_stat(out["b"][1]) == "-0.030 (n=1)"
    assert resolved({**out["c"], "n_a": 3, "n_b": 3}) == "no interval"

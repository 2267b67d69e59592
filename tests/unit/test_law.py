"""The forgetting law over runs: the slope interval against scipy, one point per run."""

from __future__ import annotations

import pytest
from scipy import stats as sps

from circuitdrift.compare.law import law_on_runs, slope_fit


def test_slope_interval_matches_scipy():
    xs, ys = [0.1, 0.4, 0.5, 0.9, 1.3], [0.02, 0.05, 0.09, 0.11, 0.2]
    fit = slope_fit(xs, ys)
    ref = sps.linregress(xs, ys)
    half = sps.t.ppf(0.975, 3) * ref.stderr
    assert fit["slope"] == pytest.approx(ref.slope) and fit["slope_se"] == pytest.approx(ref.stderr)
    assert (fit["slope_lo"], fit["slope_hi"]) == (pytest.approx(ref.slope - half), pytest.approx(ref.slope + half))
    assert fit["pearson_r"] == pytest.approx(ref.rvalue)
    assert slope_fit([0.1, 0.2], [0.0, 1.0])["slope_lo"] is None  # two points: no residual degrees of freedom


def test_one_point_per_run_from_its_final_checkpoint():
    finals = {("sft", 1e-4, s): {"kl_exact": 0.1 * (s + 1), "kl": None, "forgetting": 0.01 * (s + 1),
                                 "logprob_drift": -0.1 * (s + 1)} for s in range(3)}
    finals[("rl", 1e-4, 0)] = {"kl_exact": 0.5, "kl": 0.4, "forgetting": 0.05, "logprob_drift": None}
    law = law_on_runs(finals)
    forgetting = law["kl_exact - forgetting"]
    assert forgetting["fit"]["n"] == 4 and forgetting["fit"]["slope"] == pytest.approx(0.1)
    assert forgetting["fit"]["slope_lo"] == pytest.approx(0.1)  # exactly on the line: zero residual
    assert law["kl_exact - logprob_drift"]["fit"]["n"] == 3  # the run without a drift is left out
    assert law["kl - forgetting"]["fit"]["n"] == 1 and law["kl - forgetting"]["fit"]["slope"] is None

"""Aggregation over seeds against scipy and hand computation: intervals, pairing, goals, the Razor fit."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from circuitdrift.compare.aggregate import aggregate, degraded_heads
from circuitdrift.compare.schema import BaseCircuit, CheckpointMeasurement, ProbeDCV, ProbeMeasurement
from circuitdrift.compare.stats import difference, line_fit, stat
from circuitdrift.report.findings import findings
from circuitdrift.report.tables import format_stat, summary_markdown

ZERO_CMAP = [[0.0, 0.0], [0.0, 0.0]]


def m(method, seed, step, target=0.5, kl=0.0, acc=0.9, preservation=1.0, damage=0.0, cmap=None, probe="p"):
    probes = {probe: ProbeMeasurement(accuracy=acc, cmap=cmap or ZERO_CMAP, cmap_method="exact", damage=damage,
                                      circuit=["L0.H0"], preservation=preservation)}
    return CheckpointMeasurement(method=method, seed=seed, step=step, target_accuracy=target, target_n=10,
                                 target_unparsable=0, kl=kl, kl_samples=10, probes=probes)


def circuit(names=("L0.H0", "L1.H1"), probe="p") -> BaseCircuit:
    return BaseCircuit(probe=probe, method="exact", metric="prob", ablation="corrupt", n_examples=4, accuracy=0.9,
                       scores=[[-0.5, 0.0], [0.0, -0.4]], circuit=list(names), faithfulness=0.9,
                       faithfulness_ablation="mean", random_faithfulness=0.2, random_faithfulness_all=[0.2])


def run(measurements, goal=0.8, tau=0.1, dcv=None):
    return aggregate({}, {"p": circuit()}, measurements, dcv or {}, target_goal=goal, tau=tau)


def test_t_interval_matches_scipy():
    values = [0.1, 0.4, 0.35, 0.2]
    s = stat(values)
    mean = sum(values) / 4
    lo, hi = sps.t.interval(0.95, df=3, loc=mean, scale=sps.sem(values))
    assert (s["mean"], s["n"], s["missing"]) == (pytest.approx(mean), 4, 0)
    assert (s["lo"], s["hi"]) == (pytest.approx(lo), pytest.approx(hi))


def test_single_seed_collapses_and_missing_values_are_counted():
    assert stat([0.3]) == {"mean": 0.3, "lo": 0.3, "hi": 0.3, "n": 1, "missing": 0}
    assert stat([0.3, float("nan"), None]) == {"mean": 0.3, "lo": 0.3, "hi": 0.3, "n": 1, "missing": 2}
    assert stat([]) == {"mean": None, "lo": None, "hi": None, "n": 0, "missing": 0}
    assert format_stat(stat([0.3])) == "0.300 (n=1)"
    assert format_stat(stat([None])) == "n/a"
    assert format_stat(stat([0.1, 0.2])).startswith("0.150 [")


def test_paired_and_welch_match_scipy():
    a, b = {0: 1.0, 1: 2.0, 2: 3.5}, {0: 0.5, 1: 1.0, 2: 1.2}
    paired = difference(a, b)
    ci = sps.ttest_rel(list(a.values()), list(b.values())).confidence_interval(0.95)
    assert paired["test"] == "paired" and paired["n"] == 3
    assert (paired["lo"], paired["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    b_other = {0: 0.5, 1: 1.0, 3: 1.2, 4: 0.1}
    welch = difference(a, b_other)
    ci = sps.ttest_ind(list(a.values()), list(b_other.values()), equal_var=False).confidence_interval(0.95)
    assert welch["test"] == "welch" and (welch["n_a"], welch["n_b"]) == (3, 4)
    assert welch["mean"] == pytest.approx(2.1666667 - 0.7)
    assert (welch["lo"], welch["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    lonely = difference({0: 1.0}, {1: 0.5, 2: 0.7})
    assert lonely["test"] == "welch" and lonely["lo"] == lonely["hi"] == pytest.approx(0.4)
    dropped = difference({0: 1.0, 1: None}, {0: 0.5, 1: 0.2})
    assert dropped["n"] == 1 and dropped["missing"] == 1 and dropped["mean"] == 0.5


def test_forgetting_is_base_minus_checkpoint_per_seed():
    measurements = [m("sft", 0, 0, acc=0.9), m("sft", 0, 10, acc=0.6),
                    m("sft", 1, 0, acc=0.8), m("sft", 1, 10, acc=0.85)]
    agg, _ = run(measurements)
    end = agg.endpoints["sft"]["forgetting"]["p"]
    assert end["mean"] == pytest.approx(((0.9 - 0.6) + (0.8 - 0.85)) / 2)  # lost 0.3, gained 0.05
    assert agg.base_accuracy["sft"] == {"0": {"p": 0.9}, "1": {"p": 0.8}}
    curve = agg.curves["sft"].probes["p"]["forgetting"]
    assert curve[0]["mean"] == 0.0 and curve[1]["mean"] == end["mean"]
    # no step 0: the base dict is the fallback; neither: forgetting is missing, not zero
    agg, _ = aggregate({"probe_accuracy": {"p": 0.7}}, {}, [m("rl", 0, 5, acc=0.5)], {}, 0.8, 0.1)
    assert agg.endpoints["rl"]["forgetting"]["p"]["mean"] == pytest.approx(0.2)
    agg, summary = aggregate({}, {}, [m("rl", 0, 5, acc=0.5)], {}, 0.8, 0.1)
    assert agg.endpoints["rl"]["forgetting"]["p"]["n"] == 0
    assert "n/a" in summary_markdown(summary)


def _two_methods(seeds_sft=(0, 1, 2), seeds_rl=(0, 1, 2)):
    out = []
    for method, seeds, fast in (("sft", seeds_sft, 0.09), ("rl", seeds_rl, 0.05)):
        for seed in seeds:
            for step in (0, 2, 4, 6):
                target = 0.4 + fast * step + 0.01 * seed
                forget = (0.04 if method == "sft" else 0.01) * step + 0.003 * seed * (step > 0)
                out.append(m(method, seed, step, target=target, kl=forget * 10, acc=0.9 - forget,
                             preservation=1 - forget))
    return out


def test_differences_are_paired_with_same_seeds_else_welch():
    agg, _ = run(_two_methods())
    diff = agg.sft_minus_rl["forgetting_mean"]
    assert diff["test"] == "paired" and diff["n"] == 3
    assert diff["mean"] == pytest.approx((0.04 - 0.01) * 6) and diff["lo"] == pytest.approx(diff["hi"])
    agg, _ = run(_two_methods(seeds_rl=(0, 1, 5)))
    diff = agg.sft_minus_rl["forgetting_mean"]
    sft = [0.24 + 0.003 * s for s in (0, 1, 2)]
    rl = [0.06 + 0.003 * s for s in (0, 1, 5)]
    ci = sps.ttest_ind(sft, rl, equal_var=False).confidence_interval(0.95)
    assert diff["test"] == "welch" and (diff["lo"], diff["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_steps_to_goal_and_never_reached():
    measurements = _two_methods()
    agg, summary = run(measurements, goal=0.75)
    # SFT: 0.4 + 0.09 step + 0.01 seed >= 0.75 first at step 4 for every seed; RL (0.05/step) never by step 6
    assert agg.endpoints["sft"]["steps_to_goal"]["mean"] == 4 and agg.endpoints["sft"]["never_reached"] == 0
    assert agg.endpoints["rl"]["steps_to_goal"]["n"] == 0 and agg.endpoints["rl"]["never_reached"] == 3
    diff = agg.sft_minus_rl["steps_to_goal"]
    assert diff["mean"] is None and diff["never_reached"] == {"sft": 0, "rl": 3}
    assert "never reached (3/3 seeds)" in summary_markdown(summary)
    agg, _ = run(measurements, goal=0.55)  # RL: 0.4 + 0.05 step + 0.01 seed >= 0.55 at step 4; SFT at step 2
    assert agg.endpoints["rl"]["steps_to_goal"]["mean"] == 4
    assert agg.sft_minus_rl["steps_to_goal"]["mean"] == pytest.approx(2 - 4)
    agg, _ = run(measurements, goal=0.0)  # the base already meets it: zero steps
    assert agg.endpoints["sft"]["steps_to_goal"]["mean"] == 0


def test_razor_fit_on_known_line():
    fit = line_fit([0, 1, 2, 3], [0, 1, 1, 2])  # slope 0.6, intercept 0.1, SS_res 0.2, SS_tot 2
    assert fit["slope"] == pytest.approx(0.6) and fit["intercept"] == pytest.approx(0.1)
    assert fit["r2"] == pytest.approx(0.9) and fit["n"] == 4
    assert line_fit([1, 1], [0, 2])["slope"] is None and line_fit([1], [1])["r2"] is None
    # the same four points scaled by 0.1 in forgetting, split over two methods (step 0 = the base)
    points = {("sft", 0): [(1.0, 0.1), (2.0, 0.1)], ("rl", 0): [(0.0, 0.0), (3.0, 0.2)]}
    measurements = []
    for (method, seed), pts in points.items():
        measurements.append(m(method, seed, 0, kl=0.0, acc=0.9))
        for step, (kl, forget) in enumerate(pts, start=1):
            measurements.append(m(method, seed, step, kl=kl, acc=0.9 - forget))
    agg, _ = run(measurements)
    razor = agg.razor.model_dump()
    assert len(razor["points"]) == 4  # step 0 excluded
    assert razor["fit"]["slope"] == pytest.approx(0.06) and razor["fit"]["intercept"] == pytest.approx(0.01)
    assert razor["fit"]["r2"] == pytest.approx(0.9) and razor["pearson_r"] == pytest.approx(math.sqrt(0.9))
    assert razor["by_method"] == {"sft": {"r": None, "n": 2}, "rl": {"r": pytest.approx(1.0), "n": 2}}


def test_nan_is_missing_not_a_crash():
    measurements = _two_methods()
    measurements[3] = measurements[3].model_copy(update={"kl": float("nan")})  # sft seed 0, final step
    agg, summary = run(measurements)
    kl = agg.endpoints["sft"]["kl"]
    assert kl["n"] == 2 and kl["missing"] == 1
    assert agg.sft_minus_rl["kl"]["n"] == 2
    assert len(agg.razor.points) == 3 * 2 * 3 - 1
    summary_markdown(summary)


def test_single_seed_marked_and_said():
    agg, summary = run(_two_methods(seeds_sft=(0,), seeds_rl=(0,)))
    assert agg.endpoints["sft"]["forgetting_mean"]["n"] == 1
    assert "(n=1)" in summary_markdown(summary)
    text = " ".join(findings(agg, summary))
    assert "no interval" in text or "single observation" in text
    assert "excludes zero" not in text


def test_degraded_and_vulnerable_heads():
    c = circuit(("L0.H0", "L1.H1"))
    cm = m("sft", 0, 5, cmap=[[-0.3, -0.5], [0.0, -0.05]])
    assert degraded_heads(cm, c, "p", tau=0.1) == 1  # L0.H0 at -0.3; L0.H1 is outside the circuit
    assert degraded_heads(cm, c, "p", tau=0.01) == 2
    assert degraded_heads(cm, None, "p", tau=0.1) is None
    sft_cmap, rl_cmap = [[-0.3, -0.5], [0.0, -0.05]], [[-0.1, -0.5], [-0.2, -0.05]]
    measurements = [m("sft", 0, 0), m("rl", 0, 0), m("sft", 0, 5, cmap=sft_cmap), m("rl", 0, 5, cmap=rl_cmap)]
    dcv = ProbeDCV(probe="p", step=5, tau=0.1, delta_sft=sft_cmap, delta_rl=rl_cmap, V=[[0.2, 0.0], [-0.2, 0.0]],
                   vulnerable=[{"layer": 0, "head": 0, "name": "L0.H0", "V": 0.2, "in_base_circuit": True}],
                   D=ZERO_CMAP, preservation={"sft": 1.0, "rl": 1.0}, base_circuit=["L0.H0", "L1.H1"])
    agg, summary = run(measurements, dcv={"p": dcv})
    rows = {row.method: row.model_dump() for row in summary}
    assert rows["sft"]["vulnerable_heads"]["p"]["mean"] == 1  # L0.H0: -0.3 < -0.1 - 0.1
    assert rows["rl"]["vulnerable_heads"]["p"]["mean"] == 1  # L1.H0: -0.2 < 0.0 - 0.1
    assert rows["sft"]["degraded_heads"]["mean"] == 1 and rows["rl"]["degraded_heads"]["mean"] == 0


def test_vulnerable_heads_per_seed_under_the_relative_threshold():
    """Per seed: base-circuit heads where (dF_RL - dF_SFT) / |s_h| > tau (SFT) or the mirror image (RL)."""
    # circuit(): L0.H0 with s = -0.5, L1.H1 with s = -0.4; L0.H1 and L1.H0 are off the circuit
    sft_cmap, rl_cmap = [[-0.06, -0.5], [0.0, 0.0]], [[0.0, 0.0], [-0.9, -0.05]]
    measurements = [m("sft", 0, 0), m("rl", 0, 0), m("sft", 0, 5, cmap=sft_cmap), m("rl", 0, 5, cmap=rl_cmap)]
    dcv = ProbeDCV(probe="p", step=5, tau=0.1, delta_sft=sft_cmap, delta_rl=rl_cmap, V=[[0.06, 0.5], [-0.9, -0.05]],
                   vulnerable=[], D=ZERO_CMAP, preservation={"sft": 1.0, "rl": 1.0}, base_circuit=["L0.H0", "L1.H1"],
                   threshold="relative")
    rows = {row.method: row.model_dump() for row in run(measurements, dcv={"p": dcv})[1]}
    assert rows["sft"]["vulnerable_heads"]["p"]["mean"] == 1  # L0.H0: 0.06 / 0.5 = 0.12 > 0.1 (L0.H1 is off)
    assert rows["rl"]["vulnerable_heads"]["p"]["mean"] == 1  # L1.H1: 0.05 / 0.4 = 0.125 (L1.H0 is off)
    absolute = dcv.model_copy(update={"threshold": "absolute"})
    rows = {row.method: row.model_dump() for row in run(measurements, dcv={"p": absolute})[1]}
    assert rows["sft"]["vulnerable_heads"]["p"]["mean"] == 1  # L0.H1: 0.5 > 0.1; L0.H0's 0.06 is not
    assert rows["rl"]["vulnerable_heads"]["p"]["mean"] == 1  # L1.H0: 0.9


def test_the_third_arm_gets_its_own_paired_difference_with_sft_and_a_summary_row():
    third = [m("sft-preserve", seed, step, target=0.4 + 0.08 * step, kl=0.1 * step,
               acc=0.9 - 0.02 * step - 0.001 * seed, preservation=0.95) for seed in (0, 1, 2) for step in (0, 2, 4, 6)]
    agg, summary = run(_two_methods() + third)
    assert agg.methods == ["sft", "rl", "sft-preserve"] and [r.method for r in summary] == agg.methods
    diff = agg.preserve_minus_sft["forgetting_mean"]
    # forgetting at step 6 (against each run's own step 0): sft-preserve 0.12, sft 0.24 + 0.003 s -> -0.12 - 0.003 s
    assert agg.preserve_minus_sft["a"] == "sft-preserve" and diff["test"] == "paired" and diff["n"] == 3
    assert diff["mean"] == pytest.approx(-0.12 - 0.003) and diff["hi"] < 0
    assert agg.sft_minus_rl["forgetting_mean"]["mean"] == pytest.approx((0.04 - 0.01) * 6)  # unchanged by the arm
    assert {p.method for p in agg.razor.points} == {"sft", "rl", "sft-preserve"}  # the KL-forgetting fit pools all
    assert run(_two_methods())[0].preserve_minus_sft == {"a": "sft-preserve", "b": "sft", "available": False}


def _one_question(gain_sft=1, gain_rl=0, n=100, paired=False):
    """The demo's false verdict: SFT gains `gain_sft` questions of n on one probe in every seed, RL `gain_rl`.

    paired: record the per-question SE of (base hit - hit), the gains being the only questions that changed.
    """
    out = []
    for method, gain in (("sft", gain_sft), ("rl", gain_rl)):
        mean = -gain / n
        se = math.sqrt((gain * (-1 - mean) ** 2 + (n - gain) * mean**2) / (n - 1) / n) if paired else None
        for seed in (0, 1, 2):
            for step in (0, 10):
                acc = 0.7 + (gain / n) * (step > 0)
                probes = {"p": ProbeMeasurement(accuracy=acc, n=n, cmap=ZERO_CMAP, cmap_method="exact", damage=0.0,
                                                circuit=["L0.H0"], preservation=1.0,
                                                forgetting_se=se if step > 0 else None)}
                out.append(CheckpointMeasurement(method=method, seed=seed, step=step, target_accuracy=0.5,
                                                 target_n=100, target_unparsable=0, kl=0.0, kl_samples=10,
                                                 probes=probes))
    return out


def test_one_question_in_every_seed_reads_no_difference_detected():
    agg, summary = run(_one_question())
    sft = agg.endpoints["sft"]["forgetting_mean"]
    # forgetting -0.01 in every seed: the old t interval had zero width; now each seed adds the two binomial
    # variances (0.7 and 0.71 over 100 questions): nonzero width, a real interval
    assert sft["mean"] == pytest.approx(-0.01) and sft["lo"] < -0.01 < sft["hi"]
    diff = agg.sft_minus_rl["forgetting_mean"]
    assert diff["resolution"] == pytest.approx(0.01)
    text = " ".join(findings(agg, summary))
    assert "No difference detected (|difference| ≤ 0.010, one question of the evaluation)" in text
    assert "forgets more: no difference detected" in text and "contradicted" not in text
    assert "(no forgetting detected)" in text


def test_a_gain_is_never_read_as_the_other_method_forgetting():
    # SFT gains 20 questions of 100 in every seed (paired SE over questions 0.0402), RL unchanged: resolved
    # below zero (t = 0.2 / 0.0232 = 8.6 on 2 df, p = 0.013, Holm x3 = 0.040 < 0.05)
    agg, summary = run(_one_question(gain_sft=20, gain_rl=0, paired=True))
    assert findings_state(agg) == "below"
    text = " ".join(findings(agg, summary))
    assert "RL forgot more" not in text and "contradicted" not in text.split("forgets more:")[1].split(";")[0]
    assert "SFT's forgetting is lower than RL's (SFT gained (probe accuracy rose), RL no forgetting detected)" in text
    assert "forgets more: not supported (SFT gained (probe accuracy rose), RL no forgetting detected; not the " \
           "opposite claim)" in text


def findings_state(agg):
    from circuitdrift.report.findings import direction
    return direction(agg.sft_minus_rl["forgetting_mean"])


def test_steps_to_goal_interval_stays_on_the_checkpoint_range():
    agg, _ = run(_two_methods(), goal=0.6)
    s = agg.endpoints["rl"]["steps_to_goal"]
    assert 0 <= s["lo"] <= s["mean"] <= s["hi"] <= 6


def test_relative_damage_is_each_heads_change_over_its_base_effect():
    from circuitdrift.compare.aggregate import degraded_relative_heads, relative_damage

    c = circuit(("L0.H0", "L1.H1"))  # base effects |s| = 0.5 and 0.4
    cm = m("sft", 0, 5, cmap=[[-0.3, -0.5], [0.0, -0.05]])
    # L0.H0: -0.3 / 0.5 = -0.6; L1.H1: -0.05 / 0.4 = -0.125
    assert relative_damage(cm, c, "p") == pytest.approx([-0.6, -0.125])
    assert degraded_relative_heads(cm, c, "p", tau=0.1) == 2
    assert degraded_relative_heads(cm, c, "p", tau=0.5) == 1
    # a CMAP a thousand times smaller reaches the same relative threshold when the base effects are that small too
    tiny = circuit(("L0.H0", "L1.H1"))
    tiny = tiny.model_copy(update={"scores": [[-5e-4, 0.0], [0.0, -4e-4]]})
    assert degraded_relative_heads(m("sft", 0, 5, cmap=[[-3e-4, 0.0], [0.0, -5e-5]]), tiny, "p", 0.1) == 2
    agg, _ = run([m("sft", 0, 0), m("sft", 0, 5, cmap=[[-0.3, -0.5], [0.0, -0.05]]),
                  m("sft", 1, 0), m("sft", 1, 5, cmap=[[-0.1, -0.5], [0.0, -0.05]])])
    dist = agg.endpoints["sft"]["relative_damage"]["p"]
    # pooled ratios -0.6, -0.125, -0.2, -0.125: sorted -0.6, -0.2, -0.125, -0.125 -> median -0.1625
    assert dist["n"] == 4 and dist["min"] == pytest.approx(-0.6) and dist["median"] == pytest.approx(-0.1625)
    assert agg.endpoints["sft"]["degraded_relative_heads"]["mean"] == 2


def test_the_findings_show_the_relative_damage_distribution():
    from circuitdrift.report.findings import relative_damage_text

    agg, _ = run([m("sft", 0, 0), m("sft", 0, 5, cmap=[[-0.3, -0.5], [0.0, -0.05]]),
                  m("sft", 1, 0), m("sft", 1, 5, cmap=[[-0.1, -0.5], [0.0, -0.05]])])
    text = relative_damage_text(agg)
    # q10 of -0.6, -0.2, -0.125, -0.125: position 0.3 -> -0.6 + 0.3 * 0.4 = -0.48
    assert "SFT: p median -0.163 (10–90 %: -0.480 to -0.125; min -0.600); heads past −τ·|s_h|: 2 [2, 2]" in text


def test_steps_to_goal_on_a_grid_has_width_even_when_every_seed_agrees():
    from circuitdrift.compare.aggregate import steps_to_goal_var

    # reached at 12 after a checkpoint at 6: uniform over (6, 12], variance 36 / 12 = 3
    assert steps_to_goal_var([0, 6, 12, 24], 12) == pytest.approx(3.0)
    assert steps_to_goal_var([0, 6, 12], 0) == 0.0 and steps_to_goal_var([0, 6], None) is None
    same = [m("sft", s, step, target=0.4 + 0.1 * (step >= 4)) for s in range(3) for step in (0, 2, 4, 6)]
    agg, _ = run(same, goal=0.5)
    s = agg.endpoints["sft"]["steps_to_goal"]
    # every seed at 4, grid variance 4 / 12 each: se = sqrt(3 * (1/3) / 9) = 1/3, half = 4.302653 / 3 = 1.434218
    assert s["mean"] == 4 and s["hi"] - s["mean"] == pytest.approx(4.302653 / 3, abs=1e-5)
    assert 0 <= s["lo"] < 4 < s["hi"] <= 6

"""Differential circuit vulnerability of one probe from the final checkpoints' records: one :class:`ProbeDCV`.

Both the third arm's head choice (pipeline/stages.py ``preserve_heads``, mid-run, over SFT and RL) and the
compare stage (``RUN/dcv/<probe>.json``, results.json ``dcv``) build DCV here, so the heads the third arm keeps
and the DCV the report shows are the same numbers. The formula itself (V, the absolute or relative threshold,
D, preservation) is :mod:`circuitdrift.circuits.vulnerability`; the ``dcv`` command, which measures loaded
models and sits below compare in the import order, uses that formula and its JSON directly.
"""

from __future__ import annotations

import torch

from circuitdrift.circuits.scores import HeadScores, head_name, parse_head
from circuitdrift.circuits.vulnerability import differential_vulnerability
from circuitdrift.compare.schema import BaseCircuit, CheckpointMeasurement, ProbeDCV

PRESERVE = "sft-preserve"  # the third arm: trained after the others, on heads chosen from them
DCV_METHODS = ("sft", "rl", PRESERVE)  # the arms DCV reads, in the order their CMAP is averaged


def probe_dcv(label: str, records: list[CheckpointMeasurement], circuit: BaseCircuit, *, step: int,
              seeds: list[int], tau: float, threshold: str,
              preserved_heads: tuple[str, ...] | None = None) -> ProbeDCV:
    """V, vulnerable heads, D and preservation of probe ``label`` at checkpoint ``step``, averaged over seeds.

    ``records`` are the runs of one learning rate per method. V compares SFT with RL (their CMAP averaged over
    seeds first); D is averaged over the ``seeds`` both SFT and RL have. The third arm, when its records are
    there, adds its mean CMAP, preservation and ``preserved_heads`` beside them.
    """
    methods = [m for m in DCV_METHODS if any(r.method == m for r in records)]
    by_method = {m: [r for r in records if r.method == m and r.step == step] for m in methods}
    mean_delta = {m: torch.tensor([r.probes[label].cmap for r in rs], dtype=torch.float64).mean(0)
                  for m, rs in by_method.items()}
    base_heads = [parse_head(n) for n in circuit.circuit]
    overall = differential_vulnerability(HeadScores(mean_delta["sft"]), HeadScores(mean_delta["rl"]), tau, base_heads,
                                         threshold=threshold,
                                         base_scores=torch.tensor(circuit.scores, dtype=torch.float64))
    summary = overall.to_json(base_heads)
    d_per_seed, preservation = [], {m: [] for m in methods}
    for seed in seeds:
        pick = {m: next((r for r in by_method[m] if r.seed == seed), None) for m in ("sft", "rl")}
        if None in pick.values():
            continue
        sft, rl = pick["sft"].probes[label], pick["rl"].probes[label]
        per = differential_vulnerability(HeadScores(torch.tensor(sft.cmap)), HeadScores(torch.tensor(rl.cmap)), tau,
                                         base_heads, [parse_head(n) for n in sft.circuit],
                                         [parse_head(n) for n in rl.circuit])
        d_per_seed.append(per.D.double())
    for m in methods:  # overlap with the base circuit re-discovered the same way (pipeline/measure.py)
        preservation[m] = [r.probes[label].preservation for r in by_method[m]]
    third = PRESERVE in mean_delta
    return ProbeDCV(
        probe=label, step=step, tau=tau, delta_sft=mean_delta["sft"].tolist(), delta_rl=mean_delta["rl"].tolist(),
        V=overall.V.tolist(), vulnerable=summary["vulnerable"], threshold=threshold,
        V_relative=summary.get("V_relative"),
        D=torch.stack(d_per_seed).mean(0).tolist(),
        preservation={m: sum(v) / len(v) for m, v in preservation.items() if v}, base_circuit=circuit.circuit,
        delta_preserve=mean_delta[PRESERVE].tolist() if third else None,
        preserved_heads=list(preserved_heads) if third and preserved_heads is not None else None,
        delta_reverse={m: torch.tensor([r.probes[label].cmap_reverse for r in rs], dtype=torch.float64).mean(0).tolist()
                       for m, rs in by_method.items() if rs and all(r.probes[label].cmap_reverse for r in rs)},
    )


def vulnerable_names(dcv: dict[str, ProbeDCV]) -> list[str]:
    """The union over probes of the vulnerable heads, in probe order then rank order (no repeats)."""
    return list(dict.fromkeys(v["name"] for d in dcv.values() for v in d.vulnerable))


def top_heads_by_v(dcv: dict[str, ProbeDCV], k: int) -> list[str]:
    """The ``k`` heads with the largest V averaged over probes: the third arm's heads when none passes tau."""
    v_mean = torch.stack([torch.tensor(d.V, dtype=torch.float64) for d in dcv.values()]).mean(0)  # [L, H]
    return [head_name(*h) for h in HeadScores(-v_mean).top_k(k)]  # largest V first

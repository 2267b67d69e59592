"""Controls for every circuit claim: the base circuit against random head sets of its size, and circuit distance.

A circuit's damage or preservation means something only where it differs from
what any heads of the same number would show. For each method and probe, at
the final checkpoint of the runs at the method's primary learning rate:

    damage(S)       = mean over seeds of mean_{h in S} dF_X(h)        (CMAP, forward direction)
    preservation(S) = mean over seeds of |S & C_X| / |S|              (C_X: the re-discovered circuit)

for S = the base circuit (damage) or the base circuit re-discovered the same
way as C_X (preservation: the pipeline's measure), and for ``n`` random head
sets of the same size drawn uniformly without replacement (seeded). The random
sets give a mean and a 95 % interval (2.5th-97.5th percentile over the sets);
the circuit "differs from random" only where its value lies outside that interval.

Circuit distance along training: 1 - Jaccard(C_X, C_0), C_0 the base model's
circuit re-discovered with the same method as C_X (the step-0 record), one
interval over seeds per (method, probe, step).

Layout (results.json "controls")::

    settings  {n_random, seed, level}
    random    {method: {probe: {size, damage: {circuit, random_mean, random_lo, random_hi, differs},
                                preservation: {...}}}}
    distance  {method: {steps, probes: {probe: [stat per step]}, mean: [stat per step]}}
"""

from __future__ import annotations

import random
from collections import defaultdict

from circuitdrift.circuits.scores import Head, parse_head
from circuitdrift.compare.intervals import bounded_stat
from circuitdrift.compare.schema import BaseCircuit, CheckpointMeasurement
from circuitdrift.compare.stats import is_number, mean_or_none

N_RANDOM = 20  # random head sets per (method, probe): the floor for a control
LEVEL = 0.95


def random_head_sets(shape: tuple[int, int], size: int, n: int, seed: int = 0) -> list[list[Head]]:
    """``n`` head sets of ``size`` heads each, uniform without replacement within a set, reproducible by seed."""
    n_layers, n_heads = shape
    every = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    rng = random.Random(seed)
    return [rng.sample(every, size) for _ in range(n)]


def jaccard_distance(a: list[str], b: list[str]) -> float | None:
    """1 - |A & B| / |A | B| (None when both are empty)."""
    union = set(a) | set(b)
    return None if not union else 1.0 - len(set(a) & set(b)) / len(union)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 1]."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def compare_with_random(circuit_value: float | None, random_values: list[float | None]) -> dict:
    """The circuit's value beside the random sets' mean and 95 % percentile interval, and whether it is outside."""
    values = [v for v in random_values if v is not None and is_number(v)]
    if not values or circuit_value is None or not is_number(circuit_value):
        return {"circuit": circuit_value, "random_mean": mean_or_none(values), "random_lo": None, "random_hi": None,
                "n_random": len(values), "differs": None}
    lo, hi = percentile(values, (1 - LEVEL) / 2), percentile(values, 1 - (1 - LEVEL) / 2)
    return {"circuit": circuit_value, "random_mean": sum(values) / len(values), "random_lo": lo, "random_hi": hi,
            "n_random": len(values), "differs": not lo <= circuit_value <= hi}


def _mean_over(cmap: list[list[float]], heads: list[Head]) -> float | None:
    values = [cmap[layer][head] for layer, head in heads]
    return None if not all(is_number(v) for v in values) else sum(values) / len(values)


def circuit_controls(measurements: list[CheckpointMeasurement], circuits: dict[str, BaseCircuit],
                     n_random: int = N_RANDOM, seed: int = 0) -> dict:
    """The controls dict of the module docstring, from one learning rate per method (the matched-steps view)."""
    runs: dict[tuple[str, int], dict[int, CheckpointMeasurement]] = defaultdict(dict)
    for m in measurements:
        runs[(m.method, m.seed)][m.step] = m
    methods = sorted({method for method, _ in runs}, key=lambda m: (("sft", "rl", "sft-preserve") + (m,)).index(m))
    out: dict = {"settings": {"n_random": n_random, "seed": seed, "level": LEVEL}, "random": {}, "distance": {}}
    for method in methods:
        seeds = sorted(s for m, s in runs if m == method)
        finals = [runs[(method, s)][max(runs[(method, s)])] for s in seeds]
        starts = [runs[(method, s)].get(0) for s in seeds]
        out["random"][method] = {}
        for probe, circuit in circuits.items():
            pms = [f.probes.get(probe) for f in finals]
            if not circuit.circuit or any(pm is None or not pm.cmap for pm in pms):
                continue
            shape = (len(pms[0].cmap), len(pms[0].cmap[0]))
            base_heads = [parse_head(n) for n in circuit.circuit]
            sets = random_head_sets(shape, len(base_heads), n_random, seed)
            damage = compare_with_random(
                mean_or_none(_mean_over(pm.cmap, base_heads) for pm in pms),
                [mean_or_none(_mean_over(pm.cmap, s) for pm in pms) for s in sets])
            rediscovered = [start.probes[probe].circuit if start and probe in start.probes else None
                            for start in starts]
            size = len(rediscovered[0]) if rediscovered and rediscovered[0] else 0
            preservation = compare_with_random(None, [])
            if size:
                kept_sets = random_head_sets(shape, size, n_random, seed + 1)
                preservation = compare_with_random(
                    mean_or_none(pm.preservation if is_number(pm.preservation) else None for pm in pms),
                    [mean_or_none(len({*map(parse_head, pm.circuit)} & set(s)) / size for pm in pms)
                     for s in kept_sets])
            out["random"][method][probe] = {"size": len(base_heads), "damage": damage, "preservation": preservation}
        out["distance"][method] = _distance(runs, method, seeds, list(circuits))
    return out


def _distance(runs: dict, method: str, seeds: list[int], probes: list[str]) -> dict:
    steps = sorted({step for s in seeds for step in runs[(method, s)]})
    per_probe: dict[str, list[dict]] = {}
    per_seed_mean: dict[tuple[int, int], float | None] = {}
    for probe in probes:
        column = []
        for step in steps:
            values = []
            for s in seeds:
                start, here = runs[(method, s)].get(0), runs[(method, s)].get(step)
                if start is None or here is None or probe not in start.probes or probe not in here.probes:
                    values.append(None)
                    continue
                values.append(jaccard_distance(here.probes[probe].circuit, start.probes[probe].circuit))
            column.append(bounded_stat(values, low=0.0, high=1.0))
            for s, v in zip(seeds, values, strict=True):
                per_seed_mean.setdefault((s, step), 0.0)
                if v is None or per_seed_mean[(s, step)] is None:
                    per_seed_mean[(s, step)] = None
                else:
                    per_seed_mean[(s, step)] += v / len(probes)
        per_probe[probe] = column
    mean = [bounded_stat([per_seed_mean.get((s, step)) for s in seeds], low=0.0, high=1.0) for step in steps]
    return {"steps": steps, "probes": per_probe, "mean": mean}

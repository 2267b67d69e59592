"""The stages of ``circuitdrift run``; each reads and writes files in the run folder.

    base circuits -> training -> measurements at every checkpoint -> comparison -> report

Each artifact's key hashes the settings and upstream keys it depends on, so a
rerun recomputes only what a change touched; see :mod:`circuitdrift.pipeline.store`.
"""

from __future__ import annotations

import math

import torch

from circuitdrift.circuits.crossmodel import cross_model_patch
from circuitdrift.circuits.discovery import find_circuit
from circuitdrift.circuits.faithfulness import faithfulness
from circuitdrift.circuits.metrics import task_accuracy
from circuitdrift.circuits.scores import head_name
from circuitdrift.circuits.vulnerability import circuit_preservation, differential_vulnerability
from circuitdrift.errors import InputError
from circuitdrift.pipeline.context import RunContext
from circuitdrift.pipeline.schema import BaseCircuit, CheckpointMeasurement, ProbeDCV, ProbeMeasurement

# analysis settings a checkpoint's measurement depends on (tau and target_goal only enter the comparison)
MEASURE_SETTINGS = {"n_examples", "circuit_method", "rediscovery_method", "metric", "ablation", "top_k",
                    "cmap_method", "batch_size"}


def parse_heads(names: list[str]) -> list[tuple[int, int]]:
    return [(int(n[1:].split(".H")[0]), int(n.split(".H")[1])) for n in names]


# ---- stage 1: the base model's circuit for every probe ---------------------------------------------

def base_circuit_key(ctx: RunContext, probe: str) -> str:
    a = ctx.config.analysis
    return ctx.key("base-circuit", ctx.base_identity, probe, ctx.config.eval.split, a.n_examples, a.circuit_method,
                   a.metric, a.ablation, a.faithfulness_ablation, a.n_random, a.top_k, ctx.config.dtype,
                   ctx.config.attn_implementation)


def base_circuits(ctx: RunContext) -> dict[str, BaseCircuit]:
    out = {}
    probes = ctx.probe_tasks()
    with ctx.reporter.stage("base circuits", len(probes)) as rep:
        for label, spec in probes.items():
            rel, key = f"circuits/base/{label}.json", base_circuit_key(ctx, spec)
            cached = ctx.store.fresh(rel, key)
            with rep.item(label, cached):
                if not cached:
                    ctx.store.write_json(rel, compute_base_circuit(ctx, label, spec).model_dump(), key)
                out[label] = BaseCircuit.model_validate(ctx.store.read_json(rel))
    return out


def compute_base_circuit(ctx: RunContext, label: str, spec: str) -> BaseCircuit:
    a = ctx.config.analysis
    model, tokenizer = ctx.base
    task = ctx.task(spec, a.n_examples)
    scores, circuit = find_circuit(model, tokenizer, task, a.circuit_method, a.metric, a.ablation, a.top_k,
                                   a.batch_size)
    try:
        faith = faithfulness(model, tokenizer, task, circuit, a.faithfulness_ablation, a.n_random, seed=0,
                             batch_size=a.batch_size)
        accuracy, ratio, random_mean, random_all = (faith.full_accuracy, faith.faithfulness,
                                                    faith.random_faithfulness, faith.random_faithfulness_all)
    except InputError:  # the base model gets no example right: faithfulness is undefined
        accuracy, ratio, random_mean, random_all = 0.0, math.nan, math.nan, []
    return BaseCircuit(
        probe=label, method=a.circuit_method, metric=a.metric, ablation=a.ablation, n_examples=len(task),
        accuracy=accuracy, scores=scores.as_lists(), circuit=[head_name(*h) for h in circuit],
        faithfulness=ratio, faithfulness_ablation=a.faithfulness_ablation, random_faithfulness=random_mean,
        random_faithfulness_all=random_all,
    )


# ---- stage 2: fine-tuning runs ----------------------------------------------------------------------

def train_key(ctx: RunContext, method: str, seed: int) -> str:
    return ctx.key("train", ctx.base_identity, ctx.config.target_task, method,
                   ctx.config.train_config(seed).model_dump(mode="json"), ctx.config.dtype)


def training(ctx: RunContext) -> dict[tuple[str, int], dict[int, str]]:
    """Every (method, seed) run; returns {(method, seed): {step: checkpoint folder (relative)}}."""
    from circuitdrift.train.checkpoints import checkpoint_step, list_checkpoints
    from circuitdrift.train.run import train

    runs = [(m, s) for m in ctx.config.methods for s in ctx.config.seeds]
    out = {}
    with ctx.reporter.stage("training", len(runs)) as rep:
        for method, seed in runs:
            rel, key = f"train/{method}/seed{seed}", train_key(ctx, method, seed)
            cached = ctx.store.fresh(rel, key)
            with rep.item(f"{method} seed {seed}", cached):
                if not cached:
                    if ctx.store.key(rel) != key:
                        ctx.store.remove(rel)  # never started, or started with other settings: start over
                    ctx.store.begin(rel, key)  # a kill from here on resumes from the last checkpoint
                    model, tokenizer = ctx.load(ctx.config.base_model)
                    train(method, model, ctx.config.target_task, ctx.config.train_config(seed), ctx.store.path(rel),
                          tokenizer=tokenizer)
                    ctx.store.mark(rel, key)
                folders = list_checkpoints(ctx.store.path(rel))
                out[(method, seed)] = {checkpoint_step(p): f"{rel}/{p.name}" for p in folders}
                missing = set(ctx.config.steps()) - set(out[(method, seed)])
                if missing:
                    raise InputError(f"run {rel}: checkpoints for steps {sorted(missing)} are missing")
    return out


# ---- stage 3: measurements at every checkpoint -------------------------------------------------------

def measure_key(ctx: RunContext, method: str, seed: int, step: int, circuits: dict[str, BaseCircuit]) -> str:
    source = ctx.base_identity if step == 0 else train_key(ctx, method, seed)
    analysis = ctx.config.analysis.model_dump(include=MEASURE_SETTINGS)
    return ctx.key("measure", source, step, ctx.exact_at(step), ctx.config.eval.model_dump(), analysis,
                   ctx.config.target_task, {p: base_circuit_key(ctx, spec) for p, spec in ctx.probe_tasks().items()})


def measurements(ctx: RunContext, checkpoints: dict, circuits: dict[str, BaseCircuit]) -> list[CheckpointMeasurement]:
    """Every checkpoint of every run. Step 0 is the base model in every run, so it is measured once."""
    items = [(m, s, step, folder) for (m, s), steps in checkpoints.items() for step, folder in sorted(steps.items())
             if step > 0]
    out = []
    with ctx.reporter.stage("measurements", len(items) + 1) as rep:
        rel, key = "measure/base/step0.json", measure_key(ctx, "base", 0, 0, circuits)
        cached = ctx.store.fresh(rel, key)
        with rep.item("base (step 0)", cached):
            if not cached:
                record = measure_checkpoint(ctx, "base", 0, 0, None, circuits)
                ctx.store.write_json(rel, record.model_dump(), key)
            base_record = CheckpointMeasurement.model_validate(ctx.store.read_json(rel))
        for method, seed in checkpoints:
            out.append(base_record.model_copy(update={"method": method, "seed": seed}))
        for method, seed, step, folder in items:
            rel = f"measure/{method}/seed{seed}/step{step}.json"
            key = measure_key(ctx, method, seed, step, circuits)
            cached = ctx.store.fresh(rel, key)
            with rep.item(f"{method} seed {seed} step {step}", cached):
                if not cached:
                    record = measure_checkpoint(ctx, method, seed, step, folder, circuits)
                    ctx.store.write_json(rel, record.model_dump(), key)
                out.append(CheckpointMeasurement.model_validate(ctx.store.read_json(rel)))
    return sorted(out, key=lambda r: (r.method, r.seed, r.step))


def measure_checkpoint(ctx: RunContext, method: str, seed: int, step: int, folder: str | None,
                       circuits: dict[str, BaseCircuit]) -> CheckpointMeasurement:
    """One checkpoint (``folder`` None: the base model itself, step 0)."""
    from circuitdrift.evaluate.accuracy import target_accuracy
    from circuitdrift.evaluate.kl import forward_kl

    cfg, a = ctx.config.eval, ctx.config.analysis
    base, tokenizer = ctx.base
    model = base if folder is None else ctx.load(ctx.store.path(folder))[0]
    target = ctx.task(ctx.config.target_task, cfg.target_n)
    acc = target_accuracy(model, tokenizer, target, cfg.max_new_tokens, cfg.batch_size)
    if step == 0:
        kl = 0.0  # the step-0 checkpoint is the base model: KL(pi_0 || pi_0) = 0
    else:
        kl = forward_kl(base, model, tokenizer, target, cfg.kl_samples, cfg.kl_temperature, cfg.kl_top_p,
                        cfg.kl_max_new_tokens, cfg.batch_size, seed=0).value
    exact = ctx.exact_at(step)
    probes = {}
    for label, spec in ctx.probe_tasks().items():
        probe_task = ctx.task(spec, a.n_examples)
        accuracy = task_accuracy(model, tokenizer, ctx.task(spec, cfg.probe_n), cfg.batch_size)
        cmap_method = "exact" if exact else a.cmap_method
        delta = cross_model_patch(base, model, tokenizer, probe_task, cmap_method, a.metric, a.batch_size)
        base_heads = parse_heads(circuits[label].circuit)
        damage = float(torch.stack([delta.scores[h] for h in base_heads]).mean())
        method_used = a.circuit_method if exact else a.rediscovery_method
        _, circuit = find_circuit(model, tokenizer, probe_task, method_used, a.metric, a.ablation, a.top_k,
                                  a.batch_size)
        probes[label] = ProbeMeasurement(
            accuracy=accuracy, cmap=delta.as_lists(), cmap_method=cmap_method, damage=damage,
            circuit=[head_name(*h) for h in circuit], preservation=circuit_preservation(base_heads, circuit),
        )
    return CheckpointMeasurement(method=method, seed=seed, step=step, target_accuracy=acc.accuracy,
                                 target_n=acc.n, target_unparsable=acc.unparsable, kl=kl,
                                 kl_samples=0 if step == 0 else cfg.kl_samples, probes=probes)


# ---- stage 4: DCV at the final checkpoint -------------------------------------------------------------

def probe_dcv(ctx: RunContext, label: str, records: list[CheckpointMeasurement], circuit: BaseCircuit) -> ProbeDCV:
    """V, vulnerable heads, D and preservation from the final checkpoints, averaged over seeds."""
    from circuitdrift.circuits.scores import HeadScores

    final = ctx.final_step()
    by_method = {m: [r for r in records if r.method == m and r.step == final] for m in ("sft", "rl")}
    mean_delta = {m: torch.tensor([r.probes[label].cmap for r in rs], dtype=torch.float64).mean(0)
                  for m, rs in by_method.items()}
    base_heads = parse_heads(circuit.circuit)
    tau = ctx.config.analysis.tau
    overall = differential_vulnerability(HeadScores(mean_delta["sft"]), HeadScores(mean_delta["rl"]), tau)
    d_per_seed, preservation = [], {"sft": [], "rl": []}
    for seed in ctx.config.seeds:
        pick = {m: next((r for r in by_method[m] if r.seed == seed), None) for m in ("sft", "rl")}
        if None in pick.values():
            continue
        sft, rl = pick["sft"].probes[label], pick["rl"].probes[label]
        per = differential_vulnerability(HeadScores(torch.tensor(sft.cmap)), HeadScores(torch.tensor(rl.cmap)), tau,
                                         base_heads, parse_heads(sft.circuit), parse_heads(rl.circuit))
        d_per_seed.append(per.D.double())
        for m in ("sft", "rl"):
            preservation[m].append(per.preservation[m])
    return ProbeDCV(
        probe=label, step=final, tau=tau, delta_sft=mean_delta["sft"].tolist(), delta_rl=mean_delta["rl"].tolist(),
        V=overall.V.tolist(), vulnerable=overall.to_json(base_heads)["vulnerable"],
        D=torch.stack(d_per_seed).mean(0).tolist(),
        preservation={m: sum(v) / len(v) for m, v in preservation.items()}, base_circuit=circuit.circuit,
    )

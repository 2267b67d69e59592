"""The stages of ``circuitdrift run``; each reads and writes files in the run folder.

    base circuits -> training -> measurements at every checkpoint -> comparison -> report

With the third arm (``sft-preserve``), SFT and RL are trained and measured first; the heads to
preserve are then chosen (from their DCV, or the base circuits) and the third arm is trained
and measured the same way.

Each stage is one :func:`~circuitdrift.engine.stage.cached_stage` over its items: an artifact's key
hashes the settings and upstream keys it depends on, so a rerun recomputes only what a change
touched (engine/store.py).
"""

from __future__ import annotations

import math

from circuitdrift.circuits.faithfulness import faithfulness
from circuitdrift.circuits.scores import head_name, parse_head
from circuitdrift.compare.dcv import PRESERVE, probe_dcv, top_heads_by_v, vulnerable_names
from circuitdrift.compare.schema import BaseCircuit, CheckpointMeasurement, ProbeDCV
from circuitdrift.compare.sweep import primary_learning_rates
from circuitdrift.engine.context import load_configured
from circuitdrift.engine.stage import Item, cached_stage
from circuitdrift.errors import InputError
from circuitdrift.io import write_json
from circuitdrift.pipeline.context import RunContext
from circuitdrift.pipeline.jobs import MeasureJob, TrainJob
from circuitdrift.pipeline.launch import launch
from circuitdrift.pipeline.measure import measure_job
from circuitdrift.tasks.registry import resolve_task
from circuitdrift.train.checkpoints import checkpoint_step, list_checkpoints
from circuitdrift.train.label_nll import label_nll
from circuitdrift.train.preservation import Preservation
from circuitdrift.train.run import WORD_SFT, train, word_labelled

# analysis settings a checkpoint's measurement depends on (tau and target_goal only enter the comparison)
MEASURE_SETTINGS = {"n_examples", "circuit_method", "rediscovery_method", "metric", "ablation", "top_k",
                    "cmap_method", "batch_size"}


def parse_heads(names: list[str]) -> list[tuple[int, int]]:
    return [parse_head(n) for n in names]


# ---- stage 1: the base model's circuit for every probe ---------------------------------------------

def base_circuit_key(ctx: RunContext, probe: str) -> str:
    a = ctx.config.analysis
    return ctx.key("base-circuit", ctx.base_identity, probe, ctx.config.eval.split, a.n_examples, a.circuit_method,
                   a.metric, a.ablation, a.faithfulness_ablation, a.n_random, a.top_k, ctx.config.dtype,
                   ctx.config.attn_implementation, a.circuit_split, ctx.config.eval.probe_n)


def base_circuits(ctx: RunContext) -> dict[str, BaseCircuit]:
    probes = ctx.probe_tasks()
    items = [Item(label, label, base_circuit_key(ctx, spec), (f"circuits/base/{label}.json",))
             for label, spec in probes.items()]

    def load(item: Item) -> BaseCircuit:
        return BaseCircuit.model_validate(ctx.store.read_json(item.rels[0]))

    def save(item: Item, circuit: BaseCircuit) -> BaseCircuit:
        ctx.store.write_json(item.rels[0], circuit.model_dump(), item.key)
        return load(item)

    return cached_stage(ctx, "base circuits", items, load=load, save=save,
                        compute=lambda item: compute_base_circuit(ctx, item.name, probes[item.name]))


def compute_base_circuit(ctx: RunContext, label: str, spec: str) -> BaseCircuit:
    """The base model's circuit for one probe, found on the circuit split (analysis.circuit_split), so the examples
    it is found on are not the ones its damage and CMAP are measured on; ``disjoint`` says whether they are."""
    a = ctx.config.analysis
    model, tokenizer = ctx.base
    task = ctx.task(spec, a.n_examples, split=a.circuit_split)
    measured = {e.clean for n in (a.n_examples, ctx.config.eval.probe_n) for e in ctx.task(spec, n).examples}
    disjoint = not measured & {e.clean for e in task.examples}
    scores, circuit = a.circuit(a.circuit_method).find(model, tokenizer, task)
    try:
        faith = faithfulness(model, tokenizer, task, circuit, ablation=a.faithfulness_ablation, n_random=a.n_random,
                             seed=0, batch_size=a.batch_size)
        accuracy, ratio, random_mean, random_all = (faith.full_accuracy, faith.faithfulness,
                                                    faith.random_faithfulness, faith.random_faithfulness_all)
    except InputError:  # the base model gets no example right: faithfulness is undefined
        accuracy, ratio, random_mean, random_all = 0.0, math.nan, math.nan, []
    return BaseCircuit(
        probe=label, method=a.circuit_method, metric=a.metric, ablation=a.ablation, n_examples=len(task),
        accuracy=accuracy, scores=scores.as_lists(), circuit=[head_name(*h) for h in circuit],
        faithfulness=ratio, faithfulness_ablation=a.faithfulness_ablation, random_faithfulness=random_mean,
        random_faithfulness_all=random_all, split=a.circuit_split, disjoint=disjoint,
    )


# ---- stage 2: fine-tuning runs ----------------------------------------------------------------------

def run_folder(method: str, lr: float, seed: int) -> str:
    """A run's folder in the run directory: ``train/<method>/lr<lr>/seed<k>``."""
    return f"train/{method}/lr{lr:g}/seed{seed}"


def train_key(ctx: RunContext, method: str, lr: float, seed: int) -> str:
    parts = [ctx.base_identity, ctx.config.target_task, method,
             ctx.config.train_config(seed, lr).model_dump(mode="json"), ctx.config.dtype]
    if method == PRESERVE:  # the heads (chosen from the other arms' results) and lambda decide this arm's runs
        parts.append({"heads": list(ctx.preservation.heads), "lambda": ctx.preservation.lam})
    return ctx.key("train", *parts)


def train_job(job: TrainJob) -> None:
    """Worker: one (method, lr, seed) run into its folder (resumes from the folder's last checkpoint)."""
    config = job.config
    model, tokenizer = load_configured(config)
    train(job.method, model, config.target_task, config.train_config(job.seed, job.learning_rate), job.folder,
          tokenizer=tokenizer, preservation=job.preservation)


Runs = dict[tuple[str, float, int], dict[int, str]]  # (method, lr, seed) -> {step: checkpoint folder (relative)}


def training(ctx: RunContext, methods: list[str] | None = None, stage: str = "training") -> Runs:
    """Every (method, lr, seed) run of ``methods`` (default: all), ``ctx.jobs`` at a time; each run's checkpoints."""
    runs = [run for run in ctx.config.runs() if methods is None or run[0] in methods]
    items = [Item(run, f"{run[0]} lr {run[1]:g} seed {run[2]}", train_key(ctx, *run), (run_folder(*run),))
             for run in runs]

    def job(item: Item) -> TrainJob:
        method, lr, seed = item.name
        return TrainJob(ctx.config, method=method, learning_rate=lr, seed=seed,
                        folder=str(ctx.store.path(item.rels[0])),
                        preservation=ctx.preservation if method == PRESERVE else None)

    def runner(fn, todo):
        return launch(ctx.config.launcher, fn, todo, jobs=ctx.jobs, threads=ctx.config.threads,
                      folder=ctx.store.root)

    # longest runs first, stable: config order within a method; a kill resumes from the last checkpoint
    cached_stage(ctx, stage, items, worker=train_job, job=job, runner=runner, resumable=True,
                 order=lambda job: -expected_cost(ctx.config, job.method))
    return {run: checkpoint_folders(ctx, *run) for run in runs}


def expected_cost(config, method: str) -> int:
    """A run's relative cost, to start the longest runs first: the last worker then idles least.

    An RL step samples ``num_generations`` completions per prompt, so it costs several SFT steps
    (docs/benchmarks.md). The order changes when runs finish, never what they compute.
    """
    return config.train.rl.num_generations if method == "rl" else 1


def checkpoint_folders(ctx: RunContext, method: str, lr: float, seed: int) -> dict[int, str]:
    rel = run_folder(method, lr, seed)
    out = {checkpoint_step(p): f"{rel}/{p.name}" for p in list_checkpoints(ctx.store.path(rel))}
    missing = set(ctx.config.steps()) - set(out)
    if missing:
        raise InputError(f"run {rel}: checkpoints for steps {sorted(missing)} are missing")
    return out


def label_nlls(ctx: RunContext) -> dict[str, dict]:
    """Each SFT arm's label NLL under the base (train/label_nll.py): the letter for sft and sft-preserve, the
    option's word for sft-word, over the training examples (those of the first seed when train_examples is set)."""
    arms = [m for m in ctx.config.methods if m != "rl"]
    if not arms:
        return {}
    model, tokenizer = ctx.base
    train_config = ctx.config.train_config(ctx.config.seeds[0])
    task = resolve_task(ctx.config.target_task, split=train_config.train_split, n=train_config.train_examples,
                        seed=train_config.seed, tokenizer=tokenizer)  # what the first seed's run trains on
    return {m: label_nll(model, tokenizer, word_labelled(task) if m == WORD_SFT else task,
                         ctx.config.analysis.batch_size).to_dict() for m in arms}


# ---- stage 3: measurements at every checkpoint -------------------------------------------------------

def measure_key(ctx: RunContext, method: str, lr: float | None, seed: int, step: int) -> str:
    source = ctx.base_identity if step == 0 else train_key(ctx, method, lr, seed)
    analysis = ctx.config.analysis.model_dump(include=MEASURE_SETTINGS)
    reverse = step == ctx.final_step()  # the final checkpoint also gets CMAP in the reverse direction
    return ctx.key("measure", source, step, ctx.exact_at(step), reverse, ctx.config.eval.model_dump(), analysis,
                   ctx.config.target_task, {p: base_circuit_key(ctx, spec) for p, spec in ctx.probe_tasks().items()})


def measurements(ctx: RunContext, checkpoints: Runs, circuits: dict[str, BaseCircuit],
                 stage: str = "measurements") -> list[CheckpointMeasurement]:
    """Every checkpoint of every run, ``ctx.jobs`` at a time. Step 0 is the base model in every run: measured once."""
    ref_key = ctx.key("reference", ctx.base_identity, ctx.config.model_dump(mode="json"))
    folders = {("base", None, 0, 0): None}
    folders |= {(m, lr, s, step): folder for (m, lr, s), steps in checkpoints.items()
                for step, folder in sorted(steps.items()) if step > 0}
    items = [Item(name, _label(*name), measure_key(ctx, *name), (measure_rel(*name),)) for name in folders]

    def job(item: Item) -> MeasureJob:
        method, lr, seed, step = item.name
        folder = folders[item.name]
        return MeasureJob(ctx.config, circuits, reference_key=ref_key, method=method, seed=seed, learning_rate=lr,
                          step=step, folder=None if folder is None else str(ctx.store.path(folder)),
                          exact=ctx.exact_at(step))

    def save(item: Item, record: dict) -> CheckpointMeasurement:
        ctx.store.write_json(item.rels[0], record, item.key)
        return CheckpointMeasurement.model_validate(record)

    records = cached_stage(ctx, stage, items, worker=measure_job, job=job, save=save,
                           load=lambda item: CheckpointMeasurement.model_validate(ctx.store.read_json(item.rels[0])))
    base_record = records[("base", None, 0, 0)]
    out = [base_record.model_copy(update={"method": m, "seed": s, "learning_rate": lr})
           for (m, lr, s) in checkpoints]
    out += [r for k, r in records.items() if k[0] != "base"]
    return sorted(out, key=lambda r: (r.method, r.learning_rate or 0.0, r.seed, r.step))


def measure_rel(method: str, lr: float | None, seed: int, step: int) -> str:
    if method == "base":
        return "measure/base/step0.json"
    return f"measure/{method}/lr{lr:g}/seed{seed}/step{step}.json"


def _label(method: str, lr: float | None, seed: int, step: int) -> str:
    return "base (step 0)" if method == "base" else f"{method} lr {lr:g} seed {seed} step {step}"


# ---- stage 3b: the heads the third arm preserves ----------------------------------------------------

def preserve_heads(ctx: RunContext, circuits: dict[str, BaseCircuit],
                   records: list[CheckpointMeasurement]) -> Preservation:
    """The heads sft-preserve keeps: SFT's vulnerable heads from the SFT/RL DCV, or the base circuits' heads.

    ``dcv``: the union over probes of DCV's vulnerable heads (analysis.dcv_threshold) at the primary learning rates;
    when none passes tau, the ``preserve.top_k`` heads with the largest V averaged over probes.
    Written to ``preserve/heads.json`` with where the heads came from.
    """
    settings = ctx.config.preserve
    if settings.heads == "circuit":
        names = list(dict.fromkeys(name for c in circuits.values() for name in c.circuit))
        source = {"source": "circuit", "selection": "base circuits' heads, union over probes",
                  "per_probe": {label: list(c.circuit) for label, c in circuits.items()}}
    else:
        primary = primary_learning_rates(records)
        chosen = [r for r in records if r.learning_rate == primary.get(r.method)]
        dcv = {label: final_dcv(ctx, label, chosen, circuit) for label, circuit in circuits.items()}
        names = vulnerable_names(dcv)
        source = {"source": "dcv", "tau": ctx.config.analysis.tau, "threshold": ctx.config.analysis.dcv_threshold,
                  "per_probe": {label: [v["name"] for v in d.vulnerable] for label, d in dcv.items()}}
        if names:
            rule = "V / |s_h| > tau" if ctx.config.analysis.dcv_threshold == "relative" else "V > tau"
            source["selection"] = f"vulnerable heads ({rule}), union over probes"
        else:
            names = top_heads_by_v(dcv, settings.top_k)
            source["selection"] = f"no head passed tau: the top {settings.top_k} heads by V (mean over probes)"
            source["k"] = settings.top_k
    preservation = Preservation(tuple(names), settings.lam, source=source)
    # derived from cached files on every run (cheap), so it needs no cache entry of its own
    write_json(ctx.store.path("preserve/heads.json"), {"heads": names, "lambda": settings.lam, **source})
    return preservation


# ---- stage 4: DCV at the final checkpoint -------------------------------------------------------------

def final_dcv(ctx: RunContext, label: str, records: list[CheckpointMeasurement], circuit: BaseCircuit) -> ProbeDCV:
    """DCV of one probe at the run's final checkpoint (compare/dcv.py), with this run's settings."""
    a = ctx.config.analysis
    preserved = ctx.preservation.heads if ctx.preservation is not None else None
    return probe_dcv(label, records, circuit, step=ctx.final_step(), seeds=list(ctx.config.seeds), tau=a.tau,
                     threshold=a.dcv_threshold, preserved_heads=preserved)

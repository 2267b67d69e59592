"""``circuitdrift run``: the whole SFT-vs-RL circuit-vulnerability experiment in one call.

What the paper's authors did across many scripts: base circuits for every
probe, SFT and RL runs for every seed with matched budgets, measurements at
every checkpoint (target accuracy, probe accuracy, forward KL, CMAP of every
head, circuit re-discovery), DCV, aggregation with confidence intervals and a
report. Rerunning skips what is up to date; a killed run resumes; a changed
setting recomputes only what depends on it.
"""

from __future__ import annotations

import json
from pathlib import Path

from circuitdrift.compare.aggregate import aggregate
from circuitdrift.compare.controls import circuit_controls
from circuitdrift.compare.intervals import without_zero_width
from circuitdrift.compare.recipe import compute_per_step, recipe_summary
from circuitdrift.compare.schema import Results
from circuitdrift.compare.sweep import primary_learning_rates, selection_split, sweep_analysis
from circuitdrift.compare.tables import results_csv
from circuitdrift.engine.context import parent_plan
from circuitdrift.engine.environment import environment_record
from circuitdrift.engine.pool import JobPlan, start_early
from circuitdrift.engine.progress import Reporter
from circuitdrift.errors import InputError
from circuitdrift.evaluate.kl import kl_sampling
from circuitdrift.evaluate.lmeval import check_lm_eval
from circuitdrift.io import write_json, write_text
from circuitdrift.models.heads import HeadLayout
from circuitdrift.models.sampling import Sampling
from circuitdrift.pipeline import stages
from circuitdrift.pipeline.config import ExperimentConfig, load_config, probe_label
from circuitdrift.pipeline.context import RunContext
from circuitdrift.report.build import build_report
from circuitdrift.report.index import build_index
from circuitdrift.train.grpo import rollout_sampling, vllm_settings
from circuitdrift.train.run import WORD_SFT, word_labelled

LIBRARIES = ("circuitdrift", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "numpy", "scipy",
             "matplotlib", "pydantic")


def run_experiment(config_path: str | Path | None = None, out: str | Path | None = None,
                   quiet: bool = False, jobs: int | None = None) -> Path:
    """Run (or resume) the experiment of ``config_path`` (default: configs/demo.yaml) into ``out``.

    ``jobs`` worker processes train and measure independent runs side by side (default: the
    device's rule, :func:`~circuitdrift.engine.pool.job_plan`: one per GPU on CUDA, one per
    core on CPU); each uses ``config.threads`` torch threads, so the numbers do not depend on ``jobs``.
    A config with several target tasks runs one experiment per task, each in its own subfolder
    ``out/<task>`` (a complete run folder), and writes an index page beside them.
    """
    config, source = load_config(config_path)
    plan = parent_plan(config, jobs)
    reporter = Reporter(quiet)
    root = Path(out) if out is not None else Path("runs") / config.name
    tasks = config.target_tasks()
    contexts = {task: RunContext(config.for_task(task), None, reporter, jobs=plan) for task in tasks}
    for ctx in contexts.values():
        check_against_model(ctx)  # before any run folder exists: bad input leaves nothing behind
    if len(tasks) == 1:
        return run_single(contexts[tasks[0]], source, root)
    folders = {}
    for task, ctx in contexts.items():
        reporter.log(f"target task {task}")
        folders[task] = run_single(ctx, source, root / probe_label(task)).name
    build_index(root, config.name, folders)
    reporter.log(f"done: {root / 'index.html'}")
    return root


def run_single(ctx: RunContext, source: str, folder: Path) -> Path:
    """One target task's experiment into ``folder``: circuits, training, measurements, comparison, report."""
    config, reporter = ctx.config, ctx.reporter
    store = ctx.open_folder(folder, source=source, environment=environment(config, ctx.jobs))
    start_early(ctx.jobs, stages.train_job)  # the workers' imports on the other core, beside the base circuits
    circuits = stages.base_circuits(ctx)
    first = [m for m in config.methods if m != stages.PRESERVE]
    checkpoints = stages.training(ctx, first) if first else {}
    records = stages.measurements(ctx, checkpoints, circuits) if first else []
    if stages.PRESERVE in config.methods:  # the third arm: heads chosen from the others' results, then trained
        ctx.preservation = stages.preserve_heads(ctx, circuits, records)
        reporter.log(f"sft-preserve keeps {len(ctx.preservation.heads)} heads: {', '.join(ctx.preservation.heads)} "
                     f"({ctx.preservation.source.get('selection')})")
        more = stages.training(ctx, [stages.PRESERVE], stage="training (sft-preserve)")
        records = sorted(records + stages.measurements(ctx, more, circuits, stage="measurements (sft-preserve)"),
                         key=lambda r: (r.method, r.learning_rate or 0.0, r.seed, r.step))
    with reporter.stage("comparison", 1) as rep, rep.item("dcv, aggregate, results"):
        compare(ctx, circuits, records)
    with reporter.stage("report", 1) as rep, rep.item("figures, report.md, report.html"):
        build_report(store.root)
    ctx.write_timings()
    reporter.log(f"done: {store.root / 'report.html'}")
    return store.root


def report_file(run_dir: Path) -> Path:
    """The page to open for a run folder: its report, or the index of a several-task run."""
    return run_dir / ("report.html" if (run_dir / "results.json").is_file() else "index.html")


def check_against_model(ctx: RunContext) -> None:
    """Settings that can only be checked against the base model and the tasks, before any long work."""
    config = ctx.config
    for spec in [config.target_task, *config.probes]:
        ctx.task(spec, 1)  # raises a one-line InputError for an unknown name or a bad file
    layout = HeadLayout.of(ctx.base[0])
    if config.analysis.top_k > layout.n_total:
        raise InputError(f"config: analysis.top_k: {config.analysis.top_k} exceeds the number of heads "
                         f"({layout.n_layers} layers x {layout.n_heads} = {layout.n_total})")
    if len(config.methods) < 2:
        ctx.reporter.log("one method only: DCV (which compares SFT with RL) is skipped")
    if WORD_SFT in config.methods:  # a target without options has no word to train on: one line now
        word_labelled(ctx.task(config.target_task, 1))
    if "rl" in config.methods:
        vllm_settings(config.train)  # rl.use_vllm without vLLM or a GPU: one line now, not after SFT
    if config.eval.lm_eval is not None:  # the harness, every task and its data, before any training
        check_lm_eval(config.eval.lm_eval.tasks, config.eval.lm_eval.include_path)


def compare(ctx: RunContext, circuits: dict, records: list) -> None:
    """The sweep analysis, DCV per probe, aggregation over seeds, results.json and results.csv (files only).

    The matched-steps view (curves, endpoints, DCV) uses each method's primary learning rate: the one
    whose final target accuracy, averaged over seeds, is highest. The sweep section compares every run.
    """
    config = ctx.config
    primary = primary_learning_rates(records)
    chosen = [r for r in records if r.learning_rate == primary[r.method]]
    dcv = {}
    if {"sft", "rl"} <= set(config.methods):
        for label, circuit in circuits.items():
            dcv[label] = stages.final_dcv(ctx, label, chosen, circuit)
            write_json(ctx.store.path(f"dcv/{label}.json"), dcv[label].model_dump())
    base_record = next(r for r in records if r.step == 0)
    base = {"target_accuracy": base_record.target_accuracy,
            "probe_accuracy": {p: m.accuracy for p, m in base_record.probes.items()}}
    summary_aggregate, summary = aggregate(base, circuits, chosen, dcv, config.analysis.target_goal,
                                           config.analysis.tau)
    levels = config.sweep.levels if config.sweep is not None else 5
    rollouts = rollout_summaries(ctx)
    preserve = (json.loads(ctx.store.path("preserve", "heads.json").read_text())
                if stages.PRESERVE in config.methods else {})
    sweep = sweep_analysis(records, list(config.methods), list(circuits), n_levels=levels, rollouts=rollouts,
                           circuits=circuits, tau=config.analysis.tau,
                           axis=config.sweep.matched_axis if config.sweep else "accuracy",
                           chance=ctx.task(config.target_task, 1).chance)
    train = config.train
    sweep["recipe"] = {"rl": recipe_summary(rollouts),
                       "compute_per_step": compute_per_step(train.prompts_per_step, train.rl.num_generations,
                                                            train.rl.max_completion_length, list(config.methods))}
    results = Results(
        name=config.name, base_model=config.base_model, target_task=config.target_task,
        probes=list(circuits), methods=list(config.methods), seeds=list(config.seeds), steps=config.steps(),
        learning_rates={m: config.learning_rates(m) for m in config.methods}, primary_learning_rate=primary,
        selection_split=selection_split(records),
        base=base, base_circuits=circuits, measurements=records, dcv=dcv, aggregate=summary_aggregate,
        summary=summary, sweep=sweep,
        rollouts=rollouts, controls=circuit_controls(chosen, circuits), preserve=preserve,
        label_nll=stages.label_nlls(ctx),
    )
    # keeps NaN (json.dumps allow_nan); an interval of zero width becomes no interval (intervals.py)
    write_json(ctx.store.path("results.json"), without_zero_width(results.model_dump()))
    write_text(ctx.store.path("results.csv"), results_csv(records, circuits=circuits, tau=config.analysis.tau))


def rollout_summaries(ctx: RunContext) -> dict[str, dict]:
    """Each RL run's rollout monitor summary (train_summary.json), keyed "method/lr/seed"."""
    out = {}
    for method, lr, seed in ctx.config.runs():
        path = ctx.store.path(stages.run_folder(method, lr, seed), "train_summary.json")
        if method == "rl" and path.is_file():
            rollouts = json.loads(path.read_text()).get("rollouts")
            if rollouts:
                out[f"{method}/{lr:g}/{seed}"] = {"collapse": rollouts.get("collapse"),
                                                  "windows": rollouts.get("windows", []),
                                                  "thresholds": rollouts.get("thresholds", {})}
    return out


def environment(config: ExperimentConfig, jobs: int | JobPlan = 1) -> dict:
    """Library versions, platform, seeds and every generation's sampling parameters: what reproduces the numbers."""
    return environment_record(
        config, libraries=LIBRARIES, jobs=jobs,
        seeds={"runs": list(config.seeds), "kl_sampling": 0, "faithfulness_random_circuits": 0,
               "train": "each run's seed: prompt order, adapter init, rollout sampling"},
        sampling={"target_accuracy": Sampling.greedy(config.eval.max_new_tokens).to_dict(),
                  "kl": kl_sampling(config.eval.kl_temperature, config.eval.kl_top_p,
                                    config.eval.kl_max_new_tokens).to_dict(),
                  "rl_rollouts": rollout_sampling(config.train).to_dict()})

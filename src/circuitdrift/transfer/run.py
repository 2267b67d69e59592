"""``circuitdrift transfer``: steer a teacher, distil students on its benign data, measure the transfer ratio.

Rerunning skips what is up to date; a killed run resumes (a student from its
last Trainer checkpoint, when ``student.checkpoint_every`` saved any); a changed
setting recomputes only what depends on it.
"""

from __future__ import annotations

from pathlib import Path

from circuitdrift.engine.context import parent_plan
from circuitdrift.engine.environment import environment_record
from circuitdrift.engine.pool import JobPlan, start_early
from circuitdrift.engine.progress import Reporter
from circuitdrift.errors import InputError
from circuitdrift.io import write_json, write_text
from circuitdrift.steer.residual import decoder_layers
from circuitdrift.transfer import stages
from circuitdrift.transfer.config import TransferConfig, load_transfer_config
from circuitdrift.transfer.report import build_transfer_report
from circuitdrift.transfer.results import build_results, results_csv
from circuitdrift.transfer.slices import check_disjoint

LIBRARIES = ("circuitdrift", "torch", "transformers", "trl", "peft", "datasets", "numpy")


def run_transfer(config_path: str | Path | None = None, out: str | Path | None = None, quiet: bool = False,
                 jobs: int | None = None) -> Path:
    """Run (or resume) the transfer experiment of ``config_path`` (default configs/transfer-demo.yaml)."""
    config, source = load_transfer_config(config_path)
    plan = parent_plan(config, jobs)
    ctx = stages.TransferContext(config, None, Reporter(quiet), jobs=plan)
    check_inputs(ctx)  # before the run folder exists: bad input leaves nothing behind
    store = ctx.open_folder(out if out is not None else Path("runs") / config.name, source=source,
                            environment=environment(config, plan))
    start_early(plan, stages.teacher_job)  # the workers' imports on the other core, beside the steering vector
    vectors = stages.steering_vector(ctx)
    ctx.release_base()  # a 7B model held here besides each job's own copies would double the GPU memory
    teacher = stages.teachers(ctx)
    stages.training_data(ctx, teacher)
    stages.students(ctx)
    evals = stages.evaluations(ctx)
    with ctx.reporter.stage("results and report", 1) as rep, rep.item("results.json, report.html"):
        results = build_results(config, vectors, teacher, evals)
        write_json(store.path("results.json"), results)
        write_text(store.path("results.csv"), results_csv(results))
        build_transfer_report(store.root)
    ctx.write_timings()
    ctx.reporter.log(f"done: {store.root / 'report.html'}")
    return store.root


def check_inputs(ctx: stages.TransferContext) -> None:
    """What can only be checked against the model and the prompt sources, before any long work."""
    c = ctx.config
    n_layers = len(decoder_layers(ctx.base[0]))
    if c.steering.layer is not None and c.steering.layer >= n_layers:
        raise InputError(f"config: steering.layer: {c.steering.layer} but the model has layers 0..{n_layers - 1}")
    for where, source in (("teacher_data", c.teacher_data), ("behaviour", c.behaviour)):
        try:
            stages.prompts_of(source)
        except InputError as err:
            raise InputError(f"config: {where}.prompts: {err}") from None
    check_disjoint(c)  # the steering, teacher, probe and behaviour prompts stay apart
    if c.judge.kind == "hf":
        from circuitdrift.models.load import resolve_model_path

        resolve_model_path(c.judge.model)


def environment(config: TransferConfig, jobs: int | JobPlan = 1) -> dict:
    """Library versions, platform, threads and every seed: what reproduces the numbers."""
    return environment_record(config, libraries=LIBRARIES, jobs=jobs,
                              seeds={"students": list(config.seeds), "teacher_sampling": config.teacher_data.seed,
                                     "bootstrap": config.analysis.bootstrap_seed})

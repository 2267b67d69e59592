"""The stages of ``circuitdrift transfer``; each reads and writes files in the run folder.

    steering vector -> teacher data and teacher behaviour per (arm, alpha) -> training data (filtered,
    matched counts) -> students per (arm, alpha, seed) -> student behaviour and mechanism -> results -> report

Two arms: ``refusal`` steers the teacher along r (paths as before: teacher/alpha<a>/...), ``random``
along a seeded direction orthogonal to r with its norm (teacher/random/alpha<a>/...); alpha = 0 (the
control) is the refusal arm's only.

Each stage is one :func:`~circuitdrift.engine.stage.cached_stage`: jobs are module-level functions
run ``jobs`` at a time in worker processes (engine/pool.py); the parent alone writes the run
folder's manifest. Each artifact's key hashes the settings and upstream keys it depends on
(engine/store.py), so a rerun redoes only what a change touched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from circuitdrift.engine.context import EngineContext, load_configured
from circuitdrift.engine.stage import Item, cached_stage
from circuitdrift.errors import InputError
from circuitdrift.io import write_json
from circuitdrift.judge.base import as_ints, attack_success, tally
from circuitdrift.judge.factory import make_judge
from circuitdrift.models.generate import Sampling, chat_completions, chat_text
from circuitdrift.steer.controls import ablation, random_direction
from circuitdrift.steer.steering import layers_from, steering
from circuitdrift.steer.vectors import SteeringVectors, difference_of_means, split_fit
from circuitdrift.train.checkpoints import checkpoint_dir
from circuitdrift.train.run import train
from circuitdrift.transfer import mechanism
from circuitdrift.transfer.config import PromptSource, TransferConfig
from circuitdrift.transfer.data import data_lines, distillation_task, read_data
from circuitdrift.transfer.jobs import EvalJob, StudentJob, TeacherJob, arm_label
from circuitdrift.transfer.quality import accuracy, answer_key, data_quality
from circuitdrift.transfer.slices import (
    PROBES,
    negative_source,
    positive_prompts,
    probe_prompts,
    source_prompts,
)

VECTOR = "steer/vector.safetensors"
STUDENT_FORMAT = "lora-adapter"  # LoRA students are kept as adapters over the base, never as merged copies
JUDGE_CACHE = "judge-cache"


def alpha_name(alpha: float) -> str:
    return "alpha0" if alpha == 0 else f"alpha{alpha:+g}"


ARMS = ("refusal", "random")  # the teacher steered along r, and along a random direction orthogonal to it


def _arm(arm: str) -> str:
    return "" if arm == "refusal" else f"{arm}/"


def teacher_rel(alpha: float, arm: str = "refusal") -> str:
    return f"teacher/{_arm(arm)}{alpha_name(alpha)}"


def student_rel(alpha: float, seed: int, arm: str = "refusal") -> str:
    return f"students/{_arm(arm)}{alpha_name(alpha)}/seed{seed}"


def eval_rel(alpha: float, seed: int, arm: str = "refusal") -> str:
    return f"measure/{_arm(arm)}{alpha_name(alpha)}/seed{seed}.json"


def teacher_items(config: TransferConfig) -> list[tuple[str, float]]:
    """(arm, alpha) of every teacher: the refusal arm at every alpha, the random arm at its alphas."""
    return [("refusal", a) for a in config.alphas] + [("random", a) for a in config.random_alphas()]


def student_items(config: TransferConfig) -> list[tuple[str, float, int]]:
    return [(arm, a, s) for arm, a in teacher_items(config) for s in config.seeds]


def direction(config: TransferConfig, vectors: SteeringVectors, arm: str):
    """The teacher's steering direction: r, or the seeded random direction orthogonal to it (same norm)."""
    return vectors.vector if arm == "refusal" else random_direction(vectors.vector, config.controls.seed)


def prompts_of(source: PromptSource) -> list[str]:
    return source_prompts(source)


@dataclass
class TransferContext(EngineContext):
    """The engine's context with the transfer experiment's cache keys."""

    config: TransferConfig

    def vector_key(self) -> str:
        c = self.config
        # the behaviour prompts are left out of the positive set (transfer/slices.py)
        return self.key("vector", self.base_identity, c.steering.model_dump(mode="json"), c.dtype,
                        c.behaviour.model_dump(mode="json"))

    def teacher_key(self, alpha: float, arm: str = "refusal") -> str:
        c = self.config
        which = arm if arm == "refusal" else [arm, c.controls.seed]
        return self.key("teacher", self.vector_key(), alpha, which,
                        c.teacher_data.model_dump(mode="json", exclude={"filter"}),
                        c.behaviour.model_dump(mode="json"), c.judge.key())

    def data_key(self, alpha: float, arm: str = "refusal") -> str:
        """The training data's key: the teacher's, or with filtering every teacher's (the row count is shared)."""
        if self.config.teacher_data.filter == "none":
            return self.teacher_key(alpha, arm)
        return self.key("data", self.config.teacher_data.filter,
                        [self.teacher_key(a, m) for m, a in teacher_items(self.config)], alpha, arm)

    def student_key(self, alpha: float, seed: int, arm: str = "refusal") -> str:
        return self.key("student", self.data_key(alpha, arm),
                        self.config.student_config(seed).model_dump(mode="json"), STUDENT_FORMAT)

    def eval_key(self, alpha: float, seed: int, arm: str = "refusal") -> str:
        c = self.config
        return self.key("eval", self.student_key(alpha, seed, arm), c.mechanism.model_dump(mode="json"),
                        c.benign_task.model_dump(mode="json") if c.benign_task else None)


# ---- stage 1: the steering vector ------------------------------------------------------------------------

def steering_vector(ctx: TransferContext) -> SteeringVectors:
    s = ctx.config.steering

    def compute(item: Item) -> SteeringVectors:
        model, tokenizer = ctx.base
        pos, neg = positive_prompts(ctx.config), prompts_of(negative_source(ctx.config))
        return difference_of_means(
            model, tokenizer, [chat_text(tokenizer, p) for p in pos], [chat_text(tokenizer, p) for p in neg],
            held_out=s.held_out, layer=s.layer, meta={"model": ctx.config.base_model, "positive": s.positive,
                                                      "negative": s.negative, "split": s.split},
            layer_range=s.layer_range,
        )  # fmt: skip

    def save(item: Item, vectors: SteeringVectors) -> None:
        vectors.save(ctx.store.path(VECTOR))
        ctx.store.mark(VECTOR, item.key)

    item = Item(VECTOR, f"{s.positive} - {s.negative}", ctx.vector_key(), (VECTOR,))
    cached_stage(ctx, "steering vector", [item], compute=compute, save=save)
    return SteeringVectors.load(ctx.store.path(VECTOR))


def steering_fit_prompts(config: TransferConfig) -> tuple[list[str], list[str]]:
    """The user turns the steering vector's means were fitted on (its held-out parts left out)."""
    s = config.steering
    pos, neg = positive_prompts(config), prompts_of(negative_source(config))
    return split_fit(pos, s.held_out)[0], split_fit(neg, s.held_out)[0]


def steered_layers(config: TransferConfig, vectors: SteeringVectors) -> list[int]:
    return layers_from(vectors.layer, vectors.directions.shape[0], config.steering.span)


# ---- stage 2: the steered teacher: its benign data and its behaviour ------------------------------------

def teacher_job(job: TeacherJob) -> dict:
    """Worker: at one alpha and arm, the teacher's sampled answers to the benign prompts and greedy answers to
    the harmful ones, with the judge's verdicts and the data's quality.

    The answers are written to ``generations`` before the judge is asked, and read back from it when it
    exists, so a judge that fails (an endpoint down) costs no generation on the rerun.
    """
    config, generations = job.config, job.generations
    t, b = config.teacher_data, config.behaviour
    benign, harmful = prompts_of(t), prompts_of(b)
    made = _read_generations(generations, benign, harmful)
    if made is None:
        model, tokenizer = load_configured(config)
        vectors = SteeringVectors.load(job.vector_path)
        with steering(model, direction(config, vectors, job.arm), steered_layers(config, vectors), job.alpha,
                      config.steering.scale, skip_first=config.steering.skip_first):
            data = chat_completions(model, tokenizer, benign,
                                    Sampling.at_temperature(t.max_new_tokens, t.temperature, t.top_p), seed=t.seed,
                                    batch_size=t.batch_size)
            answers = chat_completions(model, tokenizer, harmful, Sampling.greedy(b.max_new_tokens),
                                       batch_size=b.batch_size)
        del model
        made = {"prompts": benign, "completions": data, "harmful": harmful, "answers": answers}
        write_json(generations, made)
    judge = make_judge(config.judge, cache_dir=job.judge_cache)
    benign, data = made["prompts"], made["completions"]
    flagged = judge.flagged(benign, data)
    quality = data_quality(benign, data, flagged, judge.complied(benign, data), answer_key(t.prompts))
    return {**made, "flagged": flagged, "quality": quality, "complied": judge.complied(harmful, made["answers"])}


def _read_generations(path: str, benign: list[str], harmful: list[str]) -> dict | None:
    """The answers a failed earlier try wrote, when they are for these prompts."""
    try:
        made = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    same = made.get("prompts") == benign and made.get("harmful") == harmful
    return made if same and len(made.get("completions", ())) == len(benign) else None


def generations_rel(ctx: TransferContext, alpha: float, arm: str = "refusal") -> str:
    """Named by the teacher's key: answers made under other settings are never read back."""
    return f"{teacher_rel(alpha, arm)}/generations-{ctx.teacher_key(alpha, arm)}.json"


def teachers(ctx: TransferContext) -> dict[tuple[str, float], dict]:
    """Per (arm, alpha): ``teacher/[random/]<alpha>/data.jsonl`` (the distillation data) and ``behaviour.json``.

    An answer the judge could not read (neither yes nor no) counts as no; how many there were is in
    ``behaviour.json`` (``judge_unparsed``, ``judge_unparsed_rate``).
    """
    items = [Item((arm, alpha), arm_label(arm, alpha), ctx.teacher_key(alpha, arm),
                  (f"{teacher_rel(alpha, arm)}/data.jsonl", f"{teacher_rel(alpha, arm)}/behaviour.json"))
             for arm, alpha in teacher_items(ctx.config)]

    def job(item: Item) -> TeacherJob:
        arm, alpha = item.name
        return TeacherJob(ctx.config, vector_path=str(ctx.store.path(VECTOR)),
                          judge_cache=str(ctx.store.path(JUDGE_CACHE)), arm=arm, alpha=alpha,
                          generations=str(ctx.store.path(generations_rel(ctx, alpha, arm))))

    def save(item: Item, result: dict) -> dict:
        (arm, alpha), (data_rel, behaviour_rel) = item.name, item.rels
        ctx.store.write_text(data_rel, data_lines(result["prompts"], result["completions"], result["flagged"]),
                             item.key)
        flags, verdicts = tally(result["flagged"]), tally(result["complied"])
        unparsed = flags["n_unparsed"] + verdicts["n_unparsed"]
        behaviour = {"alpha": alpha, "arm": arm, "flag_rate": flags["rate"],
                     "n_data": len(result["completions"]),
                     "n_empty": sum(not c.strip() for c in result["completions"]),
                     "quality": result["quality"],
                     "B": attack_success(result["complied"]),
                     "complied": as_ints(result["complied"]),
                     "answers": result["answers"], "harmful": result["harmful"],
                     "judge_unparsed": unparsed,
                     "judge_unparsed_rate": unparsed / (len(result["flagged"]) + len(result["complied"]))}
        ctx.store.write_json(behaviour_rel, behaviour, item.key)
        # its answers are in data.jsonl and behaviour.json now
        ctx.store.path(generations_rel(ctx, alpha, arm)).unlink(missing_ok=True)
        return behaviour

    return cached_stage(ctx, "teachers", items, worker=teacher_job, job=job, save=save,
                        load=lambda item: ctx.store.read_json(item.rels[1]))


# ---- stage 2b: the training data, filtered and matched in size when asked ----------------------------------

def train_data_rel(config: TransferConfig, alpha: float, arm: str = "refusal") -> str:
    name = "data.jsonl" if config.teacher_data.filter == "none" else "train.jsonl"
    return f"{teacher_rel(alpha, arm)}/{name}"


def matched_rows(data: dict[tuple[str, float], list[dict]]) -> dict[tuple[str, float], list[dict]]:
    """Every teacher's unflagged, non-empty rows, cut to the smallest such count so every alpha trains on as many."""
    kept = {item: [r for r in rows if not r["flagged"] and r["completion"].strip()] for item, rows in data.items()}
    n = min(len(rows) for rows in kept.values())
    if n == 0:
        empty = [arm_label(arm, a) for (arm, a), rows in kept.items() if not rows]
        raise InputError(f"teacher_data.filter flagged: no unflagged answer left at {', '.join(empty)}")
    return {item: rows[:n] for item, rows in kept.items()}


def training_data(ctx: TransferContext, teacher: dict[tuple[str, float], dict]) -> None:
    """With ``teacher_data.filter: flagged``, write each teacher's ``train.jsonl``; record the rows trained on."""
    items = teacher_items(ctx.config)
    if ctx.config.teacher_data.filter == "none":
        for item in items:
            teacher[item]["n_train"] = teacher[item]["n_data"] - teacher[item]["n_empty"]
        return
    rels = {(arm, a): train_data_rel(ctx.config, a, arm) for arm, a in items}
    if not all(ctx.store.fresh(rels[(arm, a)], ctx.data_key(a, arm)) for arm, a in items):
        rows = matched_rows({(arm, a): read_data(ctx.store.path(teacher_rel(a, arm), "data.jsonl"))
                             for arm, a in items})
        for (arm, a), kept in rows.items():
            ctx.store.write_text(rels[(arm, a)], data_lines([r["prompt"] for r in kept],
                                                            [r["completion"] for r in kept],
                                                            [r["flagged"] for r in kept]), ctx.data_key(a, arm))
    for arm, a in items:
        teacher[(arm, a)]["n_train"] = len(read_data(ctx.store.path(rels[(arm, a)])))


# ---- stage 3: students distilled on each teacher's data -------------------------------------------------

def student_job(job: StudentJob) -> None:
    """Worker: SFT of the base model on one teacher's data, with one seed (resumes a killed run).

    A LoRA student is kept as its adapter (``adapter/checkpoint-<steps>``, megabytes) over the base named by
    ``base_model``: no copy of the base at step 0 and no merged export, which for a 7B base would be 15 GB
    (bf16) or 30 GB (float32) per student. The finished adapter's optimizer state is dropped.
    """
    config, arm, alpha, folder = job.config, job.arm, job.alpha, job.folder
    model, tokenizer = load_configured(config)
    name = f"teacher-{alpha_name(alpha)}" if arm == "refusal" else f"teacher-{arm}-{alpha_name(alpha)}"
    task = distillation_task(read_data(job.data_path), tokenizer, name)
    lora = config.student.lora is not None
    train("sft", model, task, config.student_config(job.seed), folder, tokenizer=tokenizer, adapter_only=lora)
    if lora:
        for state in Path(folder, "adapter").glob("checkpoint-*/optimizer.pt"):
            state.unlink()  # finished: no resume will read it
    shutil.rmtree(checkpoint_dir(folder, 0), ignore_errors=True)  # the base model again: not worth its disk


def students(ctx: TransferContext) -> None:
    items = [Item((arm, alpha, seed), arm_label(arm, alpha, seed), ctx.student_key(alpha, seed, arm),
                  (student_rel(alpha, seed, arm),)) for arm, alpha, seed in student_items(ctx.config)]

    def job(item: Item) -> StudentJob:
        arm, alpha, seed = item.name
        return StudentJob(ctx.config, arm=arm, alpha=alpha, seed=seed,
                          data_path=str(ctx.store.path(train_data_rel(ctx.config, alpha, arm))),
                          folder=str(ctx.store.path(item.rels[0])))

    # a kill resumes a student from its last checkpoint
    cached_stage(ctx, "students", items, worker=student_job, job=job, resumable=True)


def final_checkpoint(config: TransferConfig, folder: str | Path) -> Path:
    """The student's last checkpoint: its adapter folder (LoRA) or its model folder."""
    if config.student.lora is not None:
        path = checkpoint_dir(Path(folder) / "adapter", config.student.steps)
        marker = "adapter_config.json"
    else:
        path, marker = checkpoint_dir(folder, config.student.steps), "config.json"
    if not (path / marker).is_file():
        raise InputError(f"student {folder}: its final checkpoint {path} is missing")
    return path


def load_student(config: TransferConfig, folder: str | Path):
    """The trained student and its tokenizer: the base with the adapter applied, not merged (a merge into
    bf16 weights would round small updates away), or the full fine-tuned folder."""
    path = final_checkpoint(config, folder)
    if config.student.lora is None:
        return load_configured(config, path)
    from peft import PeftModel

    base, tokenizer = load_configured(config)
    return PeftModel.from_pretrained(base, str(path)).get_base_model().eval(), tokenizer


# ---- stage 4: each student's behaviour and mechanism ----------------------------------------------------

def eval_job(job: EvalJob) -> dict:
    """Worker: the student's answers to the harmful prompts (judged), with r ablated too; its activation shift
    at every layer; the prefix log-likelihoods; its benign accuracy; its CMAP."""
    config = job.config
    base, tokenizer = load_configured(config)
    student, _ = load_student(config, job.folder)
    vectors = SteeringVectors.load(job.vector_path)
    b, m = config.behaviour, config.mechanism
    harmful, probes = prompts_of(b), probe_prompts(config)
    judge = make_judge(config.judge, cache_dir=job.judge_cache)
    answers = chat_completions(student, tokenizer, harmful, Sampling.greedy(b.max_new_tokens), batch_size=b.batch_size)
    complied = judge.complied(harmful, answers)
    verdicts = tally(complied)
    shifts, base_norm = mechanism.activation_shifts(student, base, tokenizer, harmful[:PROBES] + probes[:PROBES])
    shift = shifts[vectors.layer]
    pos_fit, neg_fit = steering_fit_prompts(config)
    change = mechanism.direction_shift(student, tokenizer, pos_fit, neg_fit, vectors.vector, vectors.layer)
    out = {"alpha": job.alpha, "seed": job.seed, "arm": job.arm, "B": attack_success(complied),
           "complied": as_ints(complied),
           "judge_unparsed": verdicts["n_unparsed"], "judge_unparsed_rate": verdicts["unparsed_rate"],
           "answers": answers, "cosine": mechanism.cosine(shift, vectors.vector), "shift_norm": float(shift.norm()),
           "shift": shifts.tolist(), "base_norm": base_norm.tolist(),
           "direction_cosine": mechanism.cosine(change, vectors.vector), "cmap": None, "complied_ablated": None,
           "logp_compliant": mechanism.prefix_logprobs(student, tokenizer, harmful, m.compliant_prefix, b.batch_size),
           "logp_refusal": mechanism.prefix_logprobs(student, tokenizer, harmful, m.refusal_prefix, b.batch_size),
           "benign_accuracy": None}
    if m.ablation:
        with ablation(student, vectors.vector, steered_layers(config, vectors)):
            ablated = chat_completions(student, tokenizer, harmful, Sampling.greedy(b.max_new_tokens),
                                       batch_size=b.batch_size)
        out["complied_ablated"] = as_ints(judge.complied(harmful, ablated))
    if config.benign_task is not None:
        q = config.benign_task
        questions = prompts_of(q)
        replies = chat_completions(student, tokenizer, questions, Sampling.greedy(q.max_new_tokens),
                                   batch_size=q.batch_size)
        out["benign_accuracy"] = accuracy(questions, replies, answer_key(q.prompts))
    if m.cmap:
        task = mechanism.own_answer_task(base, tokenizer, harmful[: m.cmap_prompts])
        if task is not None:
            out["cmap"] = mechanism.cmap_heads(base, student, tokenizer, task, method=m.cmap_method, top=m.top_heads,
                                               batch_size=m.batch_size)
    return out


def evaluations(ctx: TransferContext) -> dict[tuple[str, float, int], dict]:
    items = [Item((arm, alpha, seed), arm_label(arm, alpha, seed), ctx.eval_key(alpha, seed, arm),
                  (eval_rel(alpha, seed, arm),)) for arm, alpha, seed in student_items(ctx.config)]

    def job(item: Item) -> EvalJob:
        arm, alpha, seed = item.name
        return EvalJob(ctx.config, vector_path=str(ctx.store.path(VECTOR)),
                       judge_cache=str(ctx.store.path(JUDGE_CACHE)), arm=arm, alpha=alpha, seed=seed,
                       folder=str(ctx.store.path(student_rel(alpha, seed, arm))))

    def save(item: Item, result: dict) -> dict:
        ctx.store.write_json(item.rels[0], result, item.key)
        return result

    return cached_stage(ctx, "student measures", items, worker=eval_job, job=job, save=save,
                        load=lambda item: ctx.store.read_json(item.rels[0]))

"""The stages of ``circuitdrift transfer``; each reads and writes files in the run folder.

    steering vector -> teacher data and teacher behaviour per alpha -> students per (alpha, seed)
    -> student behaviour and mechanism per (alpha, seed) -> results -> report

Jobs are module-level functions of picklable tuples, run ``jobs`` at a time in
worker processes (pipeline/parallel.py); the parent alone writes the run folder's
manifest. Each artifact's key hashes the settings and upstream keys it depends on
(pipeline/store.py), so a rerun redoes only what a change touched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from circuitdrift import __version__
from circuitdrift.errors import InputError
from circuitdrift.io import write_json
from circuitdrift.judge.base import as_ints, make_judge, tally
from circuitdrift.models.load import load_model, resolve_model_path
from circuitdrift.pipeline.parallel import run_all
from circuitdrift.pipeline.progress import Reporter
from circuitdrift.pipeline.store import RunStore, key_of, sha256_file
from circuitdrift.steer.generate import Sampling, chat_completions, chat_text
from circuitdrift.steer.steering import layers_from, steering
from circuitdrift.steer.vectors import SteeringVectors, difference_of_means, split_fit
from circuitdrift.train.checkpoints import checkpoint_dir
from circuitdrift.train.run import train
from circuitdrift.transfer import mechanism
from circuitdrift.transfer.config import PromptSource, TransferConfig
from circuitdrift.transfer.data import data_lines, distillation_task, read_data
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


def teacher_rel(alpha: float) -> str:
    return f"teacher/{alpha_name(alpha)}"


def student_rel(alpha: float, seed: int) -> str:
    return f"students/{alpha_name(alpha)}/seed{seed}"


def eval_rel(alpha: float, seed: int) -> str:
    return f"measure/{alpha_name(alpha)}/seed{seed}.json"


def prompts_of(source: PromptSource) -> list[str]:
    return source_prompts(source)


@dataclass
class TransferContext:
    config: TransferConfig
    store: RunStore | None
    reporter: Reporter
    jobs: int = 1

    @cached_property
    def base(self):
        return load_base(self.config)

    def release_base(self) -> None:
        """Drop the parent's copy of the base model: jobs run in this process with --jobs 1 and load their own."""
        if self.__dict__.pop("base", None) is not None:
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @cached_property
    def base_identity(self) -> str:
        source = Path(resolve_model_path(self.config.base_model))
        files = sorted(source.glob("*.safetensors")) if source.is_dir() else []
        return key_of(self.config.base_model, [(f.name, sha256_file(f)) for f in files])

    def key(self, *parts) -> str:
        return key_of(__version__, *parts)

    def vector_key(self) -> str:
        c = self.config
        # the behaviour prompts are left out of the positive set (transfer/slices.py)
        return self.key("vector", self.base_identity, c.steering.model_dump(mode="json"), c.dtype,
                        c.behaviour.model_dump(mode="json"))

    def teacher_key(self, alpha: float) -> str:
        c = self.config
        return self.key("teacher", self.vector_key(), alpha, c.teacher_data.model_dump(mode="json"),
                        c.behaviour.model_dump(mode="json"), c.judge.key())

    def student_key(self, alpha: float, seed: int) -> str:
        return self.key("student", self.teacher_key(alpha), self.config.student_config(seed).model_dump(mode="json"),
                        STUDENT_FORMAT)

    def eval_key(self, alpha: float, seed: int) -> str:
        return self.key("eval", self.student_key(alpha, seed), self.config.mechanism.model_dump(mode="json"))


def load_base(config: TransferConfig):
    return load_model(config.base_model, dtype=config.dtype, device=config.device,
                      attn_implementation=config.attn_implementation)


# ---- stage 1: the steering vector ------------------------------------------------------------------------

def steering_vector(ctx: TransferContext) -> SteeringVectors:
    s = ctx.config.steering
    key = ctx.vector_key()
    with ctx.reporter.stage("steering vector", 1) as rep:
        cached = ctx.store.fresh(VECTOR, key)
        with rep.item(f"{s.positive} - {s.negative}", cached):
            if not cached:
                model, tokenizer = ctx.base
                pos, neg = positive_prompts(ctx.config), prompts_of(negative_source(ctx.config))
                vectors = difference_of_means(
                    model, tokenizer, [chat_text(tokenizer, p) for p in pos], [chat_text(tokenizer, p) for p in neg],
                    held_out=s.held_out, layer=s.layer, meta={"model": ctx.config.base_model, "positive": s.positive,
                                                              "negative": s.negative, "split": s.split},
                    layer_range=s.layer_range,
                )  # fmt: skip
                vectors.save(ctx.store.path(VECTOR))
                ctx.store.mark(VECTOR, key)
    return SteeringVectors.load(ctx.store.path(VECTOR))


def steering_fit_prompts(config: TransferConfig) -> tuple[list[str], list[str]]:
    """The user turns the steering vector's means were fitted on (its held-out parts left out)."""
    s = config.steering
    pos, neg = positive_prompts(config), prompts_of(negative_source(config))
    return split_fit(pos, s.held_out)[0], split_fit(neg, s.held_out)[0]


def steered_layers(config: TransferConfig, vectors: SteeringVectors) -> list[int]:
    return layers_from(vectors.layer, vectors.directions.shape[0], config.steering.span)


# ---- stage 2: the steered teacher: its benign data and its behaviour ------------------------------------

def teacher_job(job: tuple) -> dict:
    """Worker: at one alpha, the teacher's sampled answers to the benign prompts and greedy answers to the
    harmful ones, with the judge's verdicts.

    The answers are written to ``generations`` before the judge is asked, and read back from it when it
    exists, so a judge that fails (an endpoint down) costs no generation on the rerun.
    """
    config, vector_path, cache_dir, alpha, generations = job
    t, b = config.teacher_data, config.behaviour
    benign, harmful = prompts_of(t), prompts_of(b)
    made = _read_generations(generations, benign, harmful)
    if made is None:
        model, tokenizer = load_base(config)
        vectors = SteeringVectors.load(vector_path)
        with steering(model, vectors.vector, steered_layers(config, vectors), alpha, config.steering.scale,
                      skip_first=config.steering.skip_first):
            data = chat_completions(model, tokenizer, benign,
                                    Sampling(t.max_new_tokens, t.temperature, t.top_p, t.seed),
                                    batch_size=t.batch_size)
            answers = chat_completions(model, tokenizer, harmful, Sampling(b.max_new_tokens),
                                       batch_size=b.batch_size)
        del model
        made = {"prompts": benign, "completions": data, "harmful": harmful, "answers": answers}
        write_json(generations, made)
    judge = make_judge(config.judge, cache_dir=cache_dir)
    return {**made, "flagged": judge.flagged(benign, made["completions"]),
            "complied": judge.complied(harmful, made["answers"])}


def _read_generations(path: str, benign: list[str], harmful: list[str]) -> dict | None:
    """The answers a failed earlier try wrote, when they are for these prompts."""
    try:
        made = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    same = made.get("prompts") == benign and made.get("harmful") == harmful
    return made if same and len(made.get("completions", ())) == len(benign) else None


def generations_rel(ctx: TransferContext, alpha: float) -> str:
    """Named by the teacher's key: answers made under other settings are never read back."""
    return f"{teacher_rel(alpha)}/generations-{ctx.teacher_key(alpha)}.json"


def teachers(ctx: TransferContext) -> dict[float, dict]:
    """Per alpha: ``teacher/<alpha>/data.jsonl`` (the distillation data) and ``behaviour.json``.

    An answer the judge could not read (neither yes nor no) counts as no; how many there were is in
    ``behaviour.json`` (``judge_unparsed``, ``judge_unparsed_rate``).
    """
    out: dict[float, dict] = {}
    todo = []
    alphas = ctx.config.alphas
    with ctx.reporter.stage("teachers", len(alphas)) as rep:
        for alpha in alphas:
            rel, key = teacher_rel(alpha), ctx.teacher_key(alpha)
            if ctx.store.fresh(f"{rel}/data.jsonl", key) and ctx.store.fresh(f"{rel}/behaviour.json", key):
                out[alpha] = ctx.store.read_json(f"{rel}/behaviour.json")
                rep.record(f"alpha {alpha:g}", 0.0, cached=True)
                continue
            todo.append((ctx.config, str(ctx.store.path(VECTOR)), str(ctx.store.path(JUDGE_CACHE)), alpha,
                         str(ctx.store.path(generations_rel(ctx, alpha)))))
        for job, result, seconds in run_all(teacher_job, todo, ctx.jobs, ctx.config.threads):
            alpha = job[3]
            rel, key = teacher_rel(alpha), ctx.teacher_key(alpha)
            ctx.store.write_text(f"{rel}/data.jsonl", data_lines(result["prompts"], result["completions"],
                                                                 result["flagged"]), key)
            flags, verdicts = tally(result["flagged"]), tally(result["complied"])
            unparsed = flags["n_unparsed"] + verdicts["n_unparsed"]
            behaviour = {"alpha": alpha, "flag_rate": flags["rate"],
                         "n_data": len(result["completions"]),
                         "n_empty": sum(not c.strip() for c in result["completions"]),
                         "B": verdicts["rate"],
                         "complied": as_ints(result["complied"]),
                         "answers": result["answers"], "harmful": result["harmful"],
                         "judge_unparsed": unparsed,
                         "judge_unparsed_rate": unparsed / (len(result["flagged"]) + len(result["complied"]))}
            ctx.store.write_json(f"{rel}/behaviour.json", behaviour, key)
            Path(job[4]).unlink(missing_ok=True)  # its answers are in data.jsonl and behaviour.json now
            out[alpha] = behaviour
            rep.record(f"alpha {alpha:g}", seconds)
    return out


# ---- stage 3: students distilled on each teacher's data -------------------------------------------------

def student_job(job: tuple) -> None:
    """Worker: SFT of the base model on one teacher's data, with one seed (resumes a killed run).

    A LoRA student is kept as its adapter (``adapter/checkpoint-<steps>``, megabytes) over the base named by
    ``base_model``: no copy of the base at step 0 and no merged export, which for a 7B base would be 15 GB
    (bf16) or 30 GB (float32) per student. The finished adapter's optimizer state is dropped.
    """
    config, alpha, seed, data_path, folder = job
    model, tokenizer = load_base(config)
    task = distillation_task(read_data(data_path), tokenizer, f"teacher-{alpha_name(alpha)}")
    lora = config.student.lora is not None
    train("sft", model, task, config.student_config(seed), folder, tokenizer=tokenizer, adapter_only=lora)
    if lora:
        for state in Path(folder, "adapter").glob("checkpoint-*/optimizer.pt"):
            state.unlink()  # finished: no resume will read it
    shutil.rmtree(checkpoint_dir(folder, 0), ignore_errors=True)  # the base model again: not worth its disk


def students(ctx: TransferContext) -> None:
    items = [(a, s) for a in ctx.config.alphas for s in ctx.config.seeds]
    todo = []
    with ctx.reporter.stage("students", len(items)) as rep:
        for alpha, seed in items:
            rel, key = student_rel(alpha, seed), ctx.student_key(alpha, seed)
            if ctx.store.fresh(rel, key):
                rep.record(f"alpha {alpha:g} seed {seed}", 0.0, cached=True)
                continue
            if ctx.store.key(rel) != key:
                ctx.store.remove(rel)  # never started, or started with other settings: start over
            ctx.store.begin(rel, key)  # a kill from here on resumes from the last checkpoint
            data = str(ctx.store.path(teacher_rel(alpha), "data.jsonl"))
            todo.append((ctx.config, alpha, seed, data, str(ctx.store.path(rel))))
        for job, _, seconds in run_all(student_job, todo, ctx.jobs, ctx.config.threads):
            _, alpha, seed, _, _ = job
            ctx.store.mark(student_rel(alpha, seed), ctx.student_key(alpha, seed))
            rep.record(f"alpha {alpha:g} seed {seed}", seconds)


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
        return load_model(str(path), dtype=config.dtype, device=config.device,
                          attn_implementation=config.attn_implementation)
    from peft import PeftModel

    base, tokenizer = load_base(config)
    return PeftModel.from_pretrained(base, str(path)).get_base_model().eval(), tokenizer


# ---- stage 4: each student's behaviour and mechanism ----------------------------------------------------

def eval_job(job: tuple) -> dict:
    """Worker: the student's answers to the harmful prompts (judged), its activation shift, its CMAP."""
    config, vector_path, cache_dir, alpha, seed, folder = job
    base, tokenizer = load_base(config)
    student, _ = load_student(config, folder)
    vectors = SteeringVectors.load(vector_path)
    harmful, probes = prompts_of(config.behaviour), probe_prompts(config)
    answers = chat_completions(student, tokenizer, harmful, Sampling(config.behaviour.max_new_tokens),
                               batch_size=config.behaviour.batch_size)
    complied = make_judge(config.judge, cache_dir=cache_dir).complied(harmful, answers)
    verdicts = tally(complied)
    m = config.mechanism
    shift = mechanism.activation_shift(student, base, tokenizer, harmful[:PROBES] + probes[:PROBES], vectors.layer)
    pos_fit, neg_fit = steering_fit_prompts(config)
    change = mechanism.direction_shift(student, tokenizer, pos_fit, neg_fit, vectors.vector, vectors.layer)
    out = {"alpha": alpha, "seed": seed, "B": verdicts["rate"], "complied": as_ints(complied),
           "judge_unparsed": verdicts["n_unparsed"], "judge_unparsed_rate": verdicts["unparsed_rate"],
           "answers": answers, "cosine": mechanism.cosine(shift, vectors.vector), "shift_norm": float(shift.norm()),
           "direction_cosine": mechanism.cosine(change, vectors.vector), "cmap": None}
    if m.cmap:
        task = mechanism.own_answer_task(base, tokenizer, harmful[: m.cmap_prompts])
        if task is not None:
            out["cmap"] = mechanism.cmap_heads(base, student, tokenizer, task, m.cmap_method, m.top_heads,
                                               m.batch_size)
    return out


def evaluations(ctx: TransferContext) -> dict[tuple[float, int], dict]:
    items = [(a, s) for a in ctx.config.alphas for s in ctx.config.seeds]
    out: dict[tuple[float, int], dict] = {}
    todo = []
    with ctx.reporter.stage("student measures", len(items)) as rep:
        for alpha, seed in items:
            rel, key = eval_rel(alpha, seed), ctx.eval_key(alpha, seed)
            if ctx.store.fresh(rel, key):
                out[(alpha, seed)] = ctx.store.read_json(rel)
                rep.record(f"alpha {alpha:g} seed {seed}", 0.0, cached=True)
                continue
            todo.append((ctx.config, str(ctx.store.path(VECTOR)), str(ctx.store.path(JUDGE_CACHE)), alpha, seed,
                         str(ctx.store.path(student_rel(alpha, seed)))))
        for job, result, seconds in run_all(eval_job, todo, ctx.jobs, ctx.config.threads):
            alpha, seed = job[3], job[4]
            ctx.store.write_json(eval_rel(alpha, seed), result, ctx.eval_key(alpha, seed))
            out[(alpha, seed)] = result
            rep.record(f"alpha {alpha:g} seed {seed}", seconds)
    return out

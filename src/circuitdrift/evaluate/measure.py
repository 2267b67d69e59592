"""One checkpoint's measurements: target accuracy, probe accuracy, forgetting and forward KL.

``evaluate_model`` is what ``circuitdrift eval`` and the pipeline call per
checkpoint. Its JSON::

    {model, task, target: {accuracy, n, correct, unparsable}, probes: {name: accuracy},
     forgetting: {name: base - this}, kl: {value, stderr, n_samples, temperature, top_p,
     max_new_tokens}}

``forgetting`` and ``kl`` appear only when a base model is given. Forgetting is
the base's probe accuracy minus this model's (positive = capability lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.evaluate.accuracy import target_accuracy
from circuitdrift.evaluate.kl import forward_kl
from circuitdrift.tasks.base import Task

ORGANISM_PROBES = ("ioi", "greater-than", "induction", "factual")


def default_probes() -> tuple[str, ...]:
    """The built-in probes that exist in this installation (the organism's four)."""
    from circuitdrift.tasks.registry import builtin_tasks

    known = builtin_tasks()
    return tuple(name for name in ORGANISM_PROBES if name in known)


@dataclass(frozen=True)
class EvalSettings:
    """How a checkpoint is measured; KL defaults follow RL's Razor (docs/methods.md §7)."""

    split: str = "test"
    n: int | None = None  # target-task examples (all when None)
    probes: tuple[str, ...] | None = None  # None = default_probes()
    probe_n: int | None = 200
    max_new_tokens: int = 8  # greedy tokens generated per accuracy prompt
    kl_samples: int = 200
    kl_temperature: float = 0.6
    kl_top_p: float = 0.85
    kl_max_new_tokens: int = 128
    batch_size: int = 64
    seed: int = 0
    lm_eval_tasks: tuple[str, ...] = field(default=())  # LM Evaluation Harness benchmarks (optional extra)
    lm_eval_limit: int | None = 100


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    base: PreTrainedModel | None = None,
    settings: EvalSettings | None = None,
    model_name: str = "",
    probe_tasks: dict[str, Task] | None = None,
) -> dict:
    """All measurements of ``model`` as a JSON-ready dict (see the module docstring)."""
    settings = settings or EvalSettings()
    probe_tasks = probe_tasks if probe_tasks is not None else load_probes(settings, tokenizer)
    result: dict = {"model": model_name, "task": task.name}
    result["target"] = target_accuracy(model, tokenizer, task, settings.max_new_tokens,
                                       settings.batch_size).to_dict()
    result["probes"] = {
        name: target_accuracy(model, tokenizer, probe, settings.max_new_tokens, settings.batch_size).accuracy
        for name, probe in probe_tasks.items()
    }
    if settings.lm_eval_tasks:
        from circuitdrift.evaluate.lmeval import lm_eval_scores

        result["probes"].update(lm_eval_scores(model, tokenizer, settings.lm_eval_tasks, settings.lm_eval_limit))
    if base is not None:
        base_probes = {
            name: target_accuracy(base, tokenizer, probe, settings.max_new_tokens, settings.batch_size).accuracy
            for name, probe in probe_tasks.items()
        }
        if settings.lm_eval_tasks:
            from circuitdrift.evaluate.lmeval import lm_eval_scores

            base_probes.update(lm_eval_scores(base, tokenizer, settings.lm_eval_tasks, settings.lm_eval_limit))
        result["forgetting"] = {name: base_probes[name] - result["probes"][name] for name in base_probes}
        result["kl"] = forward_kl(
            base, model, tokenizer, task, settings.kl_samples, settings.kl_temperature, settings.kl_top_p,
            settings.kl_max_new_tokens, settings.batch_size, settings.seed,
        ).to_dict()
    return result


def load_probes(settings: EvalSettings, tokenizer: PreTrainedTokenizerBase | None = None) -> dict[str, Task]:
    """The probe tasks named in ``settings`` (built for ``tokenizer`` where a task takes one)."""
    from circuitdrift.tasks.registry import resolve_task

    names = default_probes() if settings.probes is None else settings.probes
    return {
        name: resolve_task(name, split=settings.split, n=settings.probe_n, seed=settings.seed, tokenizer=tokenizer)
        for name in names
    }

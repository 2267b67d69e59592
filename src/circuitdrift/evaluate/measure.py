"""One checkpoint's measurements: target accuracy, probe accuracy, forgetting and forward KL.

``evaluate_model`` is what ``circuitdrift eval`` and the pipeline call per
checkpoint. Its JSON::

    {model, task, target: {accuracy, n, correct, unparsable}, probes: {name: accuracy},
     forgetting: {name: base - this}, kl: {value, stderr, n_samples, temperature, top_p,
     max_new_tokens}}

``forgetting`` and ``kl`` appear only when a base model is given. Forgetting is
the base's probe accuracy minus this model's (positive = capability lost).

Default probes fit the model: the probe set a plug-in registered for the
model's tokenizer (the organism's four for the organism's vocabulary), else
the real-tokenizer probes (``hf-*``), each at its own default size
(:func:`~circuitdrift.tasks.registry.default_probes`); a default probe this
tokenizer cannot express is left out and named in ``probes_skipped`` with the reason. Probes named explicitly
are always measured (or fail with a one-line error).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.errors import InputError
from circuitdrift.evaluate.accuracy import target_accuracy
from circuitdrift.evaluate.kl import forward_kl
from circuitdrift.evaluate.lmeval import lm_eval_scores
from circuitdrift.tasks.base import Task
from circuitdrift.tasks.registry import default_probes, resolve_task


@dataclass(frozen=True)
class EvalSettings:
    """How a checkpoint is measured; KL defaults follow RL's Razor (docs/methods.md §7)."""

    split: str = "test"
    n: int | None = None  # target-task examples (all when None)
    probes: tuple[str, ...] | None = None  # None = default_probes(tokenizer)
    probe_n: int | None = None  # None: each probe's own default size
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
    skipped: dict[str, str] = {}
    if probe_tasks is None:
        probe_tasks, skipped = load_probes(settings, tokenizer)
    result: dict = {"model": model_name, "task": task.name}
    result["target"] = target_accuracy(model, tokenizer, task, settings.max_new_tokens,
                                       settings.batch_size).to_dict()
    result["probes"] = {
        name: target_accuracy(model, tokenizer, probe, settings.max_new_tokens, settings.batch_size).accuracy
        for name, probe in probe_tasks.items()
    }
    if skipped:
        result["probes_skipped"] = skipped
    if settings.lm_eval_tasks:
        result["probes"].update(lm_eval_scores(model, tokenizer, settings.lm_eval_tasks, settings.lm_eval_limit))
    if base is not None:
        base_probes = {
            name: target_accuracy(base, tokenizer, probe, settings.max_new_tokens, settings.batch_size).accuracy
            for name, probe in probe_tasks.items()
        }
        if settings.lm_eval_tasks:
            base_probes.update(lm_eval_scores(base, tokenizer, settings.lm_eval_tasks, settings.lm_eval_limit))
        result["forgetting"] = {name: base_probes[name] - result["probes"][name] for name in base_probes}
        result["kl"] = forward_kl(
            base, model, tokenizer, task, settings.kl_samples, settings.kl_temperature, settings.kl_top_p,
            settings.kl_max_new_tokens, settings.batch_size, settings.seed,
        ).to_dict()
    return result


def load_probes(settings: EvalSettings, tokenizer: PreTrainedTokenizerBase | None = None
                ) -> tuple[dict[str, Task], dict[str, str]]:
    """The probe tasks (built for ``tokenizer``) and the default probes left out, with why."""
    def load(name: str) -> Task:
        return resolve_task(name, split=settings.split, n=settings.probe_n, seed=settings.seed, tokenizer=tokenizer)

    if settings.probes is not None:
        return {name: load(name) for name in settings.probes}, {}
    tasks, skipped = {}, {}
    for name in default_probes(tokenizer):
        try:
            tasks[name] = load(name)
        except InputError as err:  # a default probe this vocabulary cannot express: say so, measure the rest
            skipped[name] = str(err)
    return tasks, skipped

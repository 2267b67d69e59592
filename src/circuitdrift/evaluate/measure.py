"""``circuitdrift eval``'s measurement of one model, as JSON: the shared checkpoint measures plus LM-Eval.

The numbers come from :func:`circuitdrift.evaluate.checkpoint.checkpoint_measures`,
the function ``circuitdrift run`` measures its checkpoints with, under the same
:class:`~circuitdrift.evaluate.settings.MeasureSettings`, so one checkpoint gets
the same target accuracy, probe accuracy (teacher-forced exact match) and KL
from either command. The JSON::

    {model, task, target: {accuracy, n, correct, unparsable}, target_sampling: {do_sample: false, ...},
     answers: {entropy_bits, distinct, top_share, collapsed}, probes: {name: accuracy},
     forgetting: {name: base - this}, logprob_drift: {name: {mean, stderr, n}},
     kl: {value, stderr, n_samples, do_sample, max_new_tokens, temperature, top_p, top_k, ...}, kl_exact}

``target_sampling`` and the sampling fields of ``kl`` state every generation
parameter; none comes from the model folder's generation_config.json.

``forgetting``, ``logprob_drift``, ``kl`` and ``kl_exact`` appear only when a
base model is given (``logprob_drift`` and ``kl_exact`` when their settings are
on). Forgetting is the base's probe accuracy minus this model's (positive =
capability lost).

Default probes fit the model: the probe set a plug-in registered for the
model's tokenizer (the organism's four for the organism's vocabulary), else
the real-tokenizer probes (``hf-*``)
(:func:`~circuitdrift.tasks.registry.default_probes`); a default probe this
tokenizer cannot express is left out and named in ``probes_skipped`` with the
reason. Probes named explicitly are always measured (or fail with a one-line error).
"""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.errors import InputError
from circuitdrift.evaluate.checkpoint import BaseSide, checkpoint_measures
from circuitdrift.evaluate.lmeval import lm_eval_scores
from circuitdrift.evaluate.settings import MeasureSettings
from circuitdrift.models.sampling import Sampling
from circuitdrift.tasks.base import Task
from circuitdrift.tasks.registry import default_probes, require_size, resolve_task, resolve_task_up_to


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    *,
    base: PreTrainedModel | None = None,
    settings: MeasureSettings | None = None,
    model_name: str = "",
    probes: tuple[str, ...] | None = None,
    probe_tasks: dict[str, Task] | None = None,
    seed: int = 0,
    lm_eval_tasks: tuple[str, ...] = (),
    lm_eval_limit: int | None = 100,
    exact_probe_n: bool = False,
) -> dict:
    """All measurements of ``model`` as a JSON-ready dict (see the module docstring).

    ``probe_tasks`` (built) or ``probes`` (names; ``None``: the defaults for this tokenizer) are the
    probes; ``seed`` draws the probe examples and the KL samples. ``settings.probe_n`` is a cap unless
    ``exact_probe_n`` (the user asked for that many: a probe with fewer is an error).
    """
    settings = settings or MeasureSettings()
    skipped: dict[str, str] = {}
    if probe_tasks is None:
        probe_tasks, skipped = load_probes(settings, tokenizer, names=probes, seed=seed, exact=exact_probe_n)
    side = None if base is None else BaseSide(model=base, tokenizer=tokenizer, settings=settings)
    measures = checkpoint_measures(model, tokenizer, target=task, probes=probe_tasks, settings=settings, base=side,
                                   seed=seed)
    result: dict = {"model": model_name, "task": task.name, "target": measures.target.to_dict(),
                    "target_sampling": Sampling.greedy(settings.max_new_tokens).to_dict(),
                    "answers": measures.spread.to_dict(),
                    "probes": {name: score.accuracy for name, score in measures.probes.items()}}
    if skipped:
        result["probes_skipped"] = skipped
    if lm_eval_tasks:
        result["probes"].update(lm_eval_scores(model, tokenizer, lm_eval_tasks, limit=lm_eval_limit))
    if base is None:
        return result
    base_scores = {name: score.base_accuracy for name, score in measures.probes.items()}
    if lm_eval_tasks:
        base_scores.update(lm_eval_scores(base, tokenizer, lm_eval_tasks, limit=lm_eval_limit))
    result["forgetting"] = {name: base_scores[name] - result["probes"][name] for name in base_scores}
    if settings.logprob_drift:
        result["logprob_drift"] = {name: score.drift.to_dict() for name, score in measures.probes.items()}
    result["kl"] = measures.kl.to_dict()
    if settings.exact_kl:
        result["kl_exact"] = measures.kl_exact
    return result


def load_probes(settings: MeasureSettings, tokenizer: PreTrainedTokenizerBase | None = None, *,
                names: tuple[str, ...] | None = None, seed: int = 0, exact: bool = False
                ) -> tuple[dict[str, Task], dict[str, str]]:
    """The probe tasks (``names``, or the defaults for ``tokenizer``) and the default probes left out, with why.

    ``settings.probe_n`` examples each, or all a probe has when fewer, unless ``exact`` (then fewer is an error).
    """
    def load(name: str) -> Task:
        if exact:
            task = resolve_task(name, split=settings.split, n=settings.probe_n, seed=seed, tokenizer=tokenizer)
            return require_size(task, settings.probe_n, "--probe-n")
        return resolve_task_up_to(name, split=settings.split, n=settings.probe_n, seed=seed, tokenizer=tokenizer)

    if names is not None:
        return {name: load(name) for name in names}, {}
    tasks, skipped = {}, {}
    for name in default_probes(tokenizer):
        try:
            tasks[name] = load(name)
        except InputError as err:  # a default probe this vocabulary cannot express: say so, measure the rest
            skipped[name] = str(err)
    return tasks, skipped

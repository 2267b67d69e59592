"""Prior-capability scores through the LM Evaluation Harness (optional extra ``lmeval``).

RL's Razor scores prior capabilities as the mean zero-shot score on HellaSwag,
TruthfulQA-mc2, MMLU, Winogrande and IFEval, 100 examples each
(docs/methods.md §7). This adapter hands an already loaded model and tokenizer to the
harness (``HFLM``), so checkpoints are evaluated exactly as circuitdrift loaded
them, and returns one number per benchmark.

- ``limit`` is the number of examples per *listed* task. A group task (MMLU is
  57 subjects) spreads it evenly over its subtasks, ceil(limit / k) each, so
  ``mmlu`` with limit 100 scores 114 questions (2 per subject), not the harness's
  own reading of ``limit`` (100 per subject, 5,700 questions);
  :func:`per_subtask_limits` says what each task gets.
- ``apply_chat_template`` wraps each question in the model's chat template (the
  harness's option); off by default, the harness's default (docs/real-models.md).
- Named benchmarks need their datasets (downloaded by the harness, or in the HF
  cache with ``HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1``); a task defined by a
  local YAML file (``include_path``) runs offline. A missing dataset, a missing
  package (IFEval needs ``lm-eval[ifeval]``: langdetect, immutabledict) or
  missing NLTK data (IFEval's ``punkt_tab``) is one input error saying which.

Install with ``pip install -c constraints.txt 'circuitdrift[lmeval]'``.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.errors import InputError

# benchmark -> the metric reported for it (lm-eval's names)
BENCHMARKS = {
    "hellaswag": "acc_norm",
    "truthfulqa_mc2": "acc",
    "mmlu": "acc",
    "winogrande": "acc",
    "ifeval": "prompt_level_strict_acc",
}
FALLBACK_METRICS = ("acc_norm", "acc", "exact_match", "prompt_level_strict_acc", "mc2")
# tasks whose code imports more than lm-eval itself: (Python modules, NLTK data paths)
REQUIREMENTS = {"ifeval": (("langdetect", "immutabledict", "nltk"), ("tokenizers/punkt_tab",))}
OFFLINE_VARIABLES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


def lm_eval_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Sequence[str],
    *,
    limit: int | None = 100,
    include_path: str | os.PathLike | None = None,
    batch_size: int = 8,
    seed: int = 0,
    apply_chat_template: bool = False,
) -> dict[str, float]:
    """``{task: score}`` for LM-Eval tasks, zero-shot, ``limit`` examples of each (see the module docstring)."""
    simple_evaluate, HFLM = _harness()
    manager, limits = _checked(tasks, include_path, limit)
    was_training = model.training
    model.eval()
    scores = {}
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        for task in tasks:  # one call per task: each its own per-subtask limit
            output = simple_evaluate(
                model=lm, tasks=[task], num_fewshot=0, limit=limits[task], task_manager=manager,
                log_samples=False, bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed,
                torch_random_seed=seed, fewshot_random_seed=seed, apply_chat_template=apply_chat_template,
            )
            scores[task] = _score(task, output["results"][task])
    finally:
        model.train(was_training)
    return scores


def _harness():
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
    except ImportError as err:
        raise InputError(
            "LM Evaluation Harness tasks need the 'lmeval' extra: pip install -c constraints.txt 'circuitdrift[lmeval]'"
        ) from err
    return simple_evaluate, HFLM


def check_lm_eval(tasks: Sequence[str], include_path: str | os.PathLike | None = None):
    """The harness's TaskManager once every task is known, its requirements met and its dataset loads;
    else one InputError."""
    return _checked(tasks, include_path, None)[0]


def per_subtask_limits(tasks: Sequence[str], limit: int | None,
                       include_path: str | os.PathLike | None = None) -> dict[str, int | None]:
    """What the harness's ``limit`` is for each task: ``limit`` for a single task, ceil(limit / k) for a group
    of k subtasks (None: every example)."""
    return _checked(tasks, include_path, limit)[1]


def _checked(tasks, include_path, limit):
    _harness()
    for task in tasks:
        check_requirements(task)
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=None if include_path is None else str(include_path),
                          include_defaults=include_path is None or any(t in BENCHMARKS for t in tasks))
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        where = f" (include path {include_path})" if include_path else ""
        raise InputError(f"lm-eval task '{unknown[0]}': not known to the LM Evaluation Harness{where}")
    limits = {}
    for task in tasks:
        leaves = _subtasks(_load(task, manager))
        limits[task] = None if limit is None else math.ceil(limit / leaves)
    return manager, limits


def check_requirements(task: str, find_module=None, find_data=None) -> None:
    """One InputError naming every package and NLTK resource ``task`` needs and lacks (IFEval: lm-eval[ifeval],
    punkt_tab); the harness would fail on import or try to download them."""
    needs = [(key, req) for key, req in REQUIREMENTS.items() if key in task]
    if not needs:
        return
    find_module = find_module or importlib.util.find_spec
    modules = [m for _, (mods, _) in needs for m in mods if find_module(m) is None]
    data: list[str] = []
    if "nltk" not in modules:
        data = [d for _, (_, paths) in needs for d in paths if not (find_data or _nltk_has)(d)]
    if modules or data:
        parts = []
        if modules:
            parts.append(f"the Python packages {', '.join(modules)} (pip install 'lm-eval[ifeval]')")
        if data:
            names = ", ".join(d.rsplit("/", 1)[-1] for d in data)
            parts.append(f"NLTK's {names} data (python -m nltk.downloader {names.replace(', ', ' ')}, "
                         "or copy it into a folder on NLTK_DATA)")
        raise InputError(f"lm-eval task '{task}': needs {' and '.join(parts)}")


def _nltk_has(path: str) -> bool:
    import nltk

    try:
        nltk.data.find(path)
    except LookupError:
        return False
    return True


def _load(task: str, manager):
    """Build one task (its dataset included), so a dataset missing offline is one error naming the task."""
    from lm_eval.tasks import get_task_dict

    try:
        return get_task_dict([task], manager)
    except Exception as err:  # datasets raises many kinds (connection, offline mode, missing files); name the task
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"lm-eval task '{task}': its dataset could not be loaded ({first[:200]}); "
                         f"{offline_advice()}") from None


def offline_advice() -> str:
    """What to do about a dataset the harness cannot reach, given the HF_*_OFFLINE variables."""
    unset = [v for v in OFFLINE_VARIABLES if os.environ.get(v, "").lower() not in ("1", "true", "yes", "on")]
    if unset:
        return (f"{' and '.join(unset)} not set: without network, fill the Hugging Face cache on a machine with "
                "network first, then set HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 (docs/real-models.md), or define "
                "a local YAML task (include_path)")
    cache = os.environ.get("HF_DATASETS_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "datasets")
    return (f"offline mode is on and the dataset is not in the cache ({cache}): fill it on a machine with network "
            "(docs/real-models.md), or define a local YAML task (include_path)")


def _subtasks(task_dict) -> int:
    """Leaf tasks of a harness task dict (a group nests dicts)."""
    return sum(_subtasks(v) if isinstance(v, dict) else 1 for v in task_dict.values())


def _score(task: str, metrics: dict) -> float:
    preferred = [BENCHMARKS[task]] if task in BENCHMARKS else list(FALLBACK_METRICS)
    for name in preferred:
        for key, value in metrics.items():
            if key.split(",")[0] == name and isinstance(value, int | float):
                return float(value)
    raise InputError(f"lm-eval task '{task}': reports none of the metrics {', '.join(preferred)}")

"""Prior-capability scores through the LM Evaluation Harness (optional extra ``lmeval``).

RL's Razor scores prior capabilities as the mean zero-shot score on HellaSwag,
TruthfulQA-mc2, MMLU, Winogrande and IFEval, 100 examples each
(docs/methods.md §7). This adapter hands an already loaded model and tokenizer to the
harness (``HFLM``), so checkpoints are evaluated exactly as circuitdrift loaded
them, and returns one number per benchmark. Named benchmarks need their
datasets (downloaded by the harness, or in the HF cache); a task defined by a
local YAML file (``include_path``) runs offline.

Install with ``pip install -c constraints.txt 'circuitdrift[lmeval]'``.
"""

from __future__ import annotations

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


def lm_eval_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Sequence[str],
    limit: int | None = 100,
    include_path: str | os.PathLike | None = None,
    batch_size: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """``{task: score}`` for LM-Eval tasks, zero-shot, first ``limit`` examples of each."""
    simple_evaluate, HFLM = _harness()
    was_training = model.training
    model.eval()
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        manager = check_lm_eval(tasks, include_path)
        output = simple_evaluate(
            model=lm, tasks=list(tasks), num_fewshot=0, limit=limit, task_manager=manager,
            log_samples=False, bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed,
            torch_random_seed=seed, fewshot_random_seed=seed,
        )
    finally:
        model.train(was_training)
    return {task: _score(task, output["results"][task]) for task in tasks}


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
    """The harness's TaskManager once every task is known and its dataset loads; else one InputError."""
    _harness()
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=None if include_path is None else str(include_path),
                          include_defaults=include_path is None or any(t in BENCHMARKS for t in tasks))
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        where = f" (include path {include_path})" if include_path else ""
        raise InputError(f"lm-eval task '{unknown[0]}': not known to the LM Evaluation Harness{where}")
    for task in tasks:
        _check_loads(task, manager)
    return manager


def _check_loads(task: str, manager) -> None:
    """Build one task (its dataset included), so a dataset missing offline is one error naming the task."""
    from lm_eval.tasks import get_task_dict

    try:
        get_task_dict([task], manager)
    except Exception as err:  # datasets raises many kinds (connection, offline mode, missing files); name the task
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"lm-eval task '{task}': its dataset could not be loaded ({first}); offline, put it in "
                         "the Hugging Face cache first or define a local YAML task (include_path)") from None


def _score(task: str, metrics: dict) -> float:
    preferred = [BENCHMARKS[task]] if task in BENCHMARKS else list(FALLBACK_METRICS)
    for name in preferred:
        for key, value in metrics.items():
            if key.split(",")[0] == name and isinstance(value, int | float):
                return float(value)
    raise InputError(f"lm-eval task '{task}': reports none of the metrics {', '.join(preferred)}")

"""The judge :class:`~circuitdrift.judge.base.JudgeSettings` describe.

Apart from :mod:`.base`, so the judges import the interface and this module
imports the judges, never the other way round. The ``hf`` judge's module is
imported when one is asked for: it brings torch and transformers, which the
offline and HTTP judges do not need.
"""

from __future__ import annotations

from pathlib import Path

from circuitdrift.judge.base import Judge, JudgeSettings
from circuitdrift.judge.http import HttpJudge
from circuitdrift.judge.phrases import PhraseJudge


def make_judge(settings: JudgeSettings | None = None, cache_dir: str | Path | None = None) -> Judge:
    """The judge the settings describe; ``cache_dir`` is the HTTP cache when the settings name none."""
    settings = settings or JudgeSettings()
    if settings.kind == "phrases":
        return PhraseJudge()
    if settings.kind == "hf":
        from circuitdrift.judge.local import load_hf_judge

        return load_hf_judge(settings.model, positive_label=settings.positive_label, device=settings.device)
    return HttpJudge(settings.base_url, settings.model, api_key_env=settings.api_key_env, timeout_s=settings.timeout_s,
                     retries=settings.retries, cache_dir=settings.cache_dir or cache_dir,
                     max_wait_s=settings.max_wait_s, workers=settings.workers)

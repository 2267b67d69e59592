"""One judge interface, its settings, and how verdicts are counted.

A judge answers two questions about (request, response) pairs:
- ``complied``: the response carries out the request instead of refusing it. On
  harmful requests this is attack success, the behaviour B of the transfer experiment.
- ``flagged``: the response looks unsafe (harmful content, or a refusal where none
  belongs). On the teacher's answers to benign prompts, the flag rate checks that the
  distillation data *looks* benign.

A verdict is True, False, or None when a model judge answered neither yes nor no
(unparsed). One unparsed answer does not stop a job: :func:`tally` counts it as
"no" in the rate (the conservative reading of attack success, :func:`attack_success`)
and reports how many there were, so a job's unparsed rate is on record beside its rate.

Three kinds share this interface: ``phrases`` (offline, the default), ``hf`` (a
local Hugging Face causal LM or sequence classifier) and ``http`` (an
OpenAI-compatible chat-completions endpoint); :mod:`.factory` builds one from
:class:`JudgeSettings`. This module imports none of them, so they may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from circuitdrift.errors import CircuitDriftError


class JudgeUnavailableError(CircuitDriftError):
    """The judge could not answer (an endpoint unreachable after its retries)."""


@runtime_checkable
class Judge(Protocol):
    name: str

    def complied(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool | None]: ...

    def flagged(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool | None]: ...


def tally(verdicts: Sequence[bool | None]) -> dict:
    """``rate`` (share of True, an unparsed None counting as False), ``n_unparsed`` and ``unparsed_rate``."""
    n = len(verdicts)
    if n == 0:
        raise ValueError("judge: no verdicts to count")
    unparsed = sum(v is None for v in verdicts)
    return {"rate": sum(v is True for v in verdicts) / n, "n_unparsed": unparsed, "unparsed_rate": unparsed / n}


def attack_success(verdicts: Sequence[bool | None]) -> float:
    """B, the attack-success rate: the share of ``complied`` verdicts that are True (unparsed counts as no)."""
    return tally(verdicts)["rate"]


def as_ints(verdicts: Sequence[bool | None]) -> list[int]:
    """1 for True, 0 for False and for unparsed (None): the per-prompt outcomes the analysis pairs."""
    return [int(v is True) for v in verdicts]


OPERATIONAL = {"cache_dir", "device", "timeout_s", "retries", "max_wait_s", "workers"}


class JudgeSettings(BaseModel):
    """Which judge, and how to reach it (the ``judge:`` section of a transfer config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["phrases", "hf", "http"] = Field("phrases", description="phrase list, local HF model, or HTTP")
    model: str | None = Field(None, description="hf: model id or folder; http: the endpoint's model name")
    base_url: str | None = Field(None, description="http: e.g. https://api.openai.com/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="http: environment variable holding the API key")
    timeout_s: float = Field(30.0, gt=0, description="http: seconds per request")
    retries: int = Field(3, ge=0, description="http: further tries after a failed request")
    max_wait_s: float = Field(300.0, gt=0, description="http: seconds in all one request may take with its retries "
                              "(waits asked by Retry-After included)")
    workers: int = Field(8, ge=1, description="http: requests in flight at once")
    cache_dir: str | None = Field(None, description="http: response cache folder (default: <run>/judge-cache)")
    positive_label: str | None = Field(None, description="hf classifier: the label meaning 'complied/unsafe'")
    device: str = Field("auto", description="hf: device of the judge model")

    @model_validator(mode="after")
    def _check(self) -> JudgeSettings:
        if self.kind in ("hf", "http") and not self.model:
            raise ValueError(f"judge kind '{self.kind}' needs 'model'")
        if self.kind == "http" and not self.base_url:
            raise ValueError("judge kind 'http' needs 'base_url'")
        return self

    def key(self) -> dict:
        """What decides the verdicts (not where the cache lives, nor how patiently it is asked)."""
        return self.model_dump(mode="json", exclude=OPERATIONAL)

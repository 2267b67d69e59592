"""A judge behind an OpenAI-compatible chat-completions endpoint (the paper used GPT-4.1).

``POST {base_url}/chat/completions`` with the model name, the judge question as
one user message, temperature 0 and a few tokens; the key is read from an
environment variable (sent as a Bearer token; an endpoint that needs none may
leave the variable unset).

Many requests (the transfer experiment asks ~17k) go ``workers`` at a time from a
thread pool. Each has a timeout; failures that may pass (connection errors,
timeouts, HTTP 429 and 5xx) are retried, waiting what the server's
``Retry-After`` asks or else an exponential backoff (capped at ``max_backoff_s``),
until ``retries`` further tries or ``max_wait_s`` seconds in all for that request
are spent; other HTTP errors are not retried. Answers are cached on disk as they
arrive, one JSON file per (base URL, model, message), so a rerun after a failure
asks nothing twice. An answer that is neither yes nor no is an unparsed verdict
(None), kept in :attr:`HttpJudge.unparsed`, not an error. Uses only the standard
library.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from email.utils import parsedate_to_datetime
from pathlib import Path

from circuitdrift.errors import InputError
from circuitdrift.io import write_json
from circuitdrift.judge.base import JudgeUnavailableError
from circuitdrift.judge.prompts import judge_prompt, read_yes_no

RETRIED_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class HttpJudge:
    name = "http"

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 30.0,
                 retries: int = 3, cache_dir: str | Path | None = None, backoff_s: float = 0.5,
                 max_tokens: int = 4, max_wait_s: float = 300.0, max_backoff_s: float = 60.0,
                 workers: int = 8) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"judge base_url '{base_url}': must start with http:// or https://")
        if workers < 1:
            raise InputError(f"judge workers {workers}: must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_wait_s = max_wait_s
        self.workers = workers
        self.max_tokens = max_tokens
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.requests_sent = 0  # HTTP requests actually made (cache hits excluded)
        self.unparsed: list[str] = []  # answers that were neither yes nor no
        self._lock = threading.Lock()

    def complied(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool | None]:
        return self._ask("complied", requests, responses)

    def flagged(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool | None]:
        return self._ask("flagged", requests, responses)

    def _ask(self, question: str, requests: Sequence[str], responses: Sequence[str]) -> list[bool | None]:
        if len(requests) != len(responses):
            raise ValueError(f"judge: {len(requests)} requests but {len(responses)} responses")
        answers = self.chat_many([judge_prompt(question, q, r) for q, r in zip(requests, responses, strict=True)])
        verdicts = [read_yes_no(a) for a in answers]
        self.unparsed += [a for a, v in zip(answers, verdicts, strict=True) if v is None]
        return verdicts

    def chat_many(self, messages: Sequence[str]) -> list[str]:
        """The answers to many messages, in order: each distinct one asked once, ``workers`` at a time.

        The first request that fails for good stops the rest (those not started are cancelled); every
        answer received before it is already in the disk cache.
        """
        unique = list(dict.fromkeys(messages))
        if self.workers == 1 or len(unique) <= 1:
            answers = dict(zip(unique, map(self.chat, unique), strict=True))
            return [answers[m] for m in messages]
        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(unique)), thread_name_prefix="judge")
        try:
            futures = {m: pool.submit(self.chat, m) for m in unique}
            wait(futures.values(), return_when=FIRST_EXCEPTION)
            for future in futures.values():
                if future.done() and future.exception() is not None:
                    raise future.exception()
            return [futures[m].result() for m in messages]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def chat(self, message: str) -> str:
        """The endpoint's answer to one user message (from the cache when it was asked before)."""
        body = {"model": self.model, "messages": [{"role": "user", "content": message}], "temperature": 0,
                "max_tokens": self.max_tokens}
        key = hashlib.sha256(json.dumps([self.base_url, body], sort_keys=True).encode()).hexdigest()
        cached = self.cache_dir / f"{key}.json" if self.cache_dir is not None else None
        if cached is not None and cached.is_file():
            try:
                return json.loads(cached.read_text(encoding="utf-8"))["answer"]
            except (json.JSONDecodeError, KeyError):
                pass  # a damaged entry is asked again
        answer = self._post(body)
        if cached is not None:
            write_json(cached, {"request": body, "answer": answer})
        return answer

    def _post(self, body: dict) -> str:
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        start = time.monotonic()
        last = ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
            with self._lock:
                self.requests_sent += 1
            asked = None  # seconds the server's Retry-After asks for
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    data = json.loads(reply.read().decode("utf-8"))
                return str(data["choices"][0]["message"]["content"])
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}"
                if err.code in (401, 403):
                    raise InputError(f"judge endpoint {url}: HTTP {err.code} (is ${self.api_key_env} set "
                                     "to a valid key?)") from err
                if err.code not in RETRIED_STATUS:
                    raise JudgeUnavailableError(f"judge endpoint {url}: HTTP {err.code} {err.reason}") from err
                asked = retry_after_s(err.headers.get("Retry-After") if err.headers else None)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = str(getattr(err, "reason", err))
            except (json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
                raise JudgeUnavailableError(f"judge endpoint {url}: not a chat-completions reply ({err})") from err
            if attempt == self.retries:
                break
            delay = asked if asked is not None else min(self.max_backoff_s, self.backoff_s * 2**attempt)
            if time.monotonic() - start + delay > self.max_wait_s:
                why = "Retry-After asks" if asked is not None else "the backoff is"
                raise JudgeUnavailableError(
                    f"judge endpoint {url}: gave up after {attempt + 1} tries ({last}): {why} {delay:g} s more, "
                    f"past judge.max_wait_s = {self.max_wait_s:g} s")
            time.sleep(delay)
        raise JudgeUnavailableError(f"judge endpoint {url}: unreachable after {self.retries + 1} tries ({last})")


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())

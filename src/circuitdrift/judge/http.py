"""A judge behind an OpenAI-compatible chat-completions endpoint (the paper used GPT-4.1).

``POST {base_url}/chat/completions`` with the model name, the judge question as
one user message, temperature 0 and a few tokens; the key is read from an
environment variable (sent as a Bearer token; an endpoint that needs none may
leave the variable unset). Each request has a timeout; failures that may pass
(connection errors, timeouts, HTTP 429 and 5xx) are retried with exponential
backoff, other HTTP errors are not. Answers are cached on disk, one JSON file per
(base URL, model, message), so a rerun asks nothing twice. Uses only the
standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from circuitdrift.errors import InputError
from circuitdrift.io import write_json
from circuitdrift.judge.base import JudgeUnavailableError
from circuitdrift.judge.prompts import judge_prompt, read_yes_no

RETRIED_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class HttpJudge:
    name = "http"

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 30.0,
                 retries: int = 3, cache_dir: str | Path | None = None, backoff_s: float = 0.5,
                 max_tokens: int = 4) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"judge base_url '{base_url}': must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.requests_sent = 0  # HTTP requests actually made (cache hits excluded)

    def complied(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool]:
        return self._ask("complied", requests, responses)

    def flagged(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool]:
        return self._ask("flagged", requests, responses)

    def _ask(self, question: str, requests: Sequence[str], responses: Sequence[str]) -> list[bool]:
        if len(requests) != len(responses):
            raise ValueError(f"judge: {len(requests)} requests but {len(responses)} responses")
        out = []
        for request, response in zip(requests, responses, strict=True):
            answer = self.chat(judge_prompt(question, request, response))
            verdict = read_yes_no(answer)
            if verdict is None:
                raise JudgeUnavailableError(
                    f"judge {self.model} at {self.base_url}: answered {answer[:60]!r}, expected yes or no")
            out.append(verdict)
        return out

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
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
            self.requests_sent += 1
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
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = str(getattr(err, "reason", err))
            except (json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
                raise JudgeUnavailableError(f"judge endpoint {url}: not a chat-completions reply ({err})") from err
        raise JudgeUnavailableError(f"judge endpoint {url}: unreachable after {self.retries + 1} tries ({last})")

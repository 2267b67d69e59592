"""Progress on long work: a rich display (stage, item, ETA), or plain log lines with ``--quiet``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Reporter:
    """Shows one stage at a time; records wall-clock seconds per stage and per item."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.timings: dict[str, dict] = {}
        self._progress = None
        self._task = None
        self._stage = ""

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.log(message)
        else:
            print(f"[circuitdrift] {message}", file=sys.stderr, flush=True)

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[Reporter]:
        self._stage = name
        self.timings[name] = {"total_s": 0.0, "items": {}}
        started = time.perf_counter()
        if self.quiet or total == 0:
            self.log(f"{name}: {total} item(s)")
            try:
                yield self
            finally:
                self.timings[name]["total_s"] = time.perf_counter() - started
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]{task.fields[stage]}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeRemainingColumn(), transient=False,
                      console=_stderr_console()) as progress:
            self._progress = progress
            self._task = progress.add_task("", total=total, stage=name)
            try:
                yield self
            finally:
                self._progress = None
                self.timings[name]["total_s"] = time.perf_counter() - started

    def record(self, label: str, seconds: float, cached: bool = False) -> None:
        """An item finished elsewhere (a worker process) in ``seconds``."""
        self.timings[self._stage]["items"][label] = round(seconds, 3)
        if self._progress is not None:
            self._progress.update(self._task, description=label + (" (cached)" if cached else ""))
            self._progress.advance(self._task)
        elif self.quiet:
            self.log(f"{self._stage}: {label}{' (cached)' if cached else ''}")

    @contextmanager
    def item(self, label: str, cached: bool = False) -> Iterator[None]:
        started = time.perf_counter()
        if self._progress is not None:
            self._progress.update(self._task, description=label + (" (cached)" if cached else ""))
        elif self.quiet:
            self.log(f"{self._stage}: {label}{' (cached)' if cached else ''}")
        try:
            yield
        finally:
            self.timings[self._stage]["items"][label] = round(time.perf_counter() - started, 3)
            if self._progress is not None:
                self._progress.advance(self._task)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)

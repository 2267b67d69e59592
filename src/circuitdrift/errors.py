"""Errors a user can act on.

Every message is one line that names what is wrong and where (file, line, key,
example index). The CLI prints it and exits with code 2 for bad input, 1 for a
runtime failure; `--debug` shows the traceback.
"""

from __future__ import annotations


class CircuitDriftError(Exception):
    """Base class: a failure circuitdrift explains in one line."""

    exit_code = 1


class InputError(CircuitDriftError, ValueError):
    """Bad input from the user: a path, a file's content, a flag or a config value (exit code 2)."""

    exit_code = 2


class TooFewExamples(InputError):
    """A task has fewer usable examples than the n asked for; ``available`` says how many it has."""

    def __init__(self, message: str, available: int):
        super().__init__(message)
        self.available = available


class IncompatibleModelsError(InputError):
    """Two models that must share a head layout or a vocabulary do not."""


class TrainingDivergedError(CircuitDriftError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def config_error(err, source: str) -> InputError:
    """The first problem of a pydantic ``ValidationError`` as ``source: key.path: message``."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    return InputError(f"{source}: {where}: {message}")

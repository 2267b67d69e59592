"""Atomic file writes: every artifact goes to a temporary name in the same folder, then is renamed,
so a kill never leaves a half-written file that looks whole."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from circuitdrift.errors import InputError


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise InputError(f"output '{path}': cannot write there ({err.strerror})") from err
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n")


def read_json(path: str | Path, what: str = "file"):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} '{path}': no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from err

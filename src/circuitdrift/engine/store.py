"""The run folder: where artifacts live, whether each is up to date, and atomic writes.

``state.json`` maps every finished artifact to the key of its inputs and the
sha256 of its content. An artifact is reused only when both match: a changed
setting changes the key (only what depends on it is recomputed), and a
truncated or hand-edited file no longer matches its hash (it is recomputed,
not trusted). Paths are built from validated names and checked to stay inside
the run folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from circuitdrift.errors import InputError
from circuitdrift.io import read_json, write_json, write_text

STATE_FILE = "state.json"


def key_of(*parts) -> str:
    """A stable hash of JSON-serialisable inputs."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_folder(path: Path) -> str:
    """Hash of a model folder: every file's relative name and content."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


class RunStore:
    """Artifacts of one run folder and their freshness."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"--out {root}: cannot create the run folder ({err.strerror})") from err
        probe = self.root / ".write-test"
        try:
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise InputError(f"--out {root}: cannot write in the run folder ({err.strerror})") from err
        self._sweep_temporaries()
        self._state = self._read_state()

    def _sweep_temporaries(self) -> None:
        """Temporary files of writes a kill interrupted: never artifacts, removed on the next start."""
        for leftover in self.root.rglob(".*.tmp"):
            if leftover.is_file():
                leftover.unlink()

    def path(self, *parts: str) -> Path:
        """A path inside the run folder; anything that would leave it is refused."""
        candidate = self.root.joinpath(*parts).resolve()
        if not candidate.is_relative_to(self.root):
            raise InputError(f"artifact path {'/'.join(parts)!r} would leave the run folder {self.root}")
        return candidate

    def _read_state(self) -> dict:
        state_path = self.root / STATE_FILE
        if not state_path.is_file():
            return {}
        try:
            data = json.loads(state_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}  # a damaged manifest only costs recomputation
        return data if isinstance(data, dict) else {}

    def _save_state(self) -> None:
        write_json(self.root / STATE_FILE, dict(sorted(self._state.items())))

    def _digest(self, rel: str) -> str | None:
        target = self.path(rel)
        if target.is_file():
            return sha256_file(target)
        if target.is_dir():
            return sha256_folder(target)
        return None

    def fresh(self, rel: str, key: str) -> bool:
        """True when ``rel`` exists, was made from inputs with ``key`` and is unchanged since."""
        entry = self._state.get(rel)
        if not entry or entry.get("key") != key or entry.get("sha256") is None:
            return False
        return self._digest(rel) == entry.get("sha256")

    def mark(self, rel: str, key: str) -> None:
        """Record ``rel`` as finished from inputs ``key`` (after it was written atomically)."""
        self._state[rel] = {"key": key, "sha256": self._digest(rel)}
        self._save_state()

    def begin(self, rel: str, key: str) -> None:
        """Record that ``rel`` is being made from inputs ``key``: a kill leaves it resumable, not fresh."""
        self._state[rel] = {"key": key, "sha256": None}
        self._save_state()

    def forget(self, rel: str) -> None:
        if self._state.pop(rel, None) is not None:
            self._save_state()

    def key(self, rel: str) -> str | None:
        entry = self._state.get(rel)
        return entry.get("key") if entry else None

    def write_json(self, rel: str, data, key: str) -> Path:
        path = write_json(self.path(rel), data)
        self.mark(rel, key)
        return path

    def write_text(self, rel: str, text: str, key: str) -> Path:
        path = write_text(self.path(rel), text)
        self.mark(rel, key)
        return path

    def read_json(self, rel: str):
        return read_json(self.path(rel), "artifact")

    def remove(self, rel: str) -> None:
        """Delete a stale artifact (file or folder) and its record."""
        target = self.path(rel)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        self.forget(rel)

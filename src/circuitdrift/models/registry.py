"""Built-in model names (``organism``) -> the folder that holds the model.

Plug-ins register their models here (:func:`register_model`); the registry
itself names none, so models/ does not depend on what plugs into it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from circuitdrift.errors import InputError
from circuitdrift.plugins import load_plugins


@dataclass(frozen=True)
class BuiltinModel:
    folder: Callable[[], Path]  # where the model lives (called when the model is loaded)
    missing_hint: str  # what to do when the folder holds no model


BUILTIN_MODELS: dict[str, BuiltinModel] = {}


def register_model(name: str, *, folder: Callable[[], Path], missing_hint: str) -> None:
    """Make ``name`` loadable wherever a model is taken (``load_model(name)``)."""
    BUILTIN_MODELS[name] = BuiltinModel(folder=folder, missing_hint=missing_hint)


def builtin_models() -> tuple[str, ...]:
    """The registered model names, sorted."""
    load_plugins()
    return tuple(sorted(BUILTIN_MODELS))


def builtin_model_dir(name: str) -> Path:
    """Folder of the built-in model ``name``; a one-line input error when unknown or not built."""
    load_plugins()
    if name not in BUILTIN_MODELS:
        raise InputError(f"model '{name}': not a built-in model (built-in: {', '.join(builtin_models()) or 'none'})")
    model = BUILTIN_MODELS[name]
    path = model.folder()
    if not (path / "config.json").is_file():
        raise InputError(f"model '{name}': shipped weights are missing at {path}; {model.missing_hint}")
    return path

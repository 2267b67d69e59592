"""The one reader of config files: YAML (or JSON) loaded safely, then validated with pydantic.

Every config (``circuitdrift run``, ``circuitdrift transfer``, ``train``) is read here, so a
missing file, bad YAML (with its line), a non-mapping or an invalid value is the same one-line
:class:`~circuitdrift.errors.InputError` naming the file and the key path (``rl.top_p``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from circuitdrift.errors import InputError, config_error

Config = TypeVar("Config", bound=BaseModel)


def read_mapping(path: Path, *, empty_ok: bool = False) -> dict:
    """A config file's top-level mapping (JSON for ``.json``, else YAML through ``safe_load``).

    ``empty_ok``: an empty file is an empty mapping (every default) rather than an error.
    """
    import yaml

    if not path.is_file():
        raise InputError(f"config '{path}': no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{err.lineno}: {err.msg}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise InputError(f"{path}{where}: {getattr(err, 'problem', None) or 'not valid YAML'}") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of settings at the top level")
    return data


def parse_settings(model: type[Config], data: dict, source: str = "config") -> Config:
    """Validate a mapping; the first problem is reported as ``source: key.path: message``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise config_error(err, source) from None


def load_settings(model: type[Config], path: Path, *, empty_ok: bool = False,
                  overrides: dict | None = None) -> Config:
    """``model`` from the file at ``path``, with the non-None ``overrides`` on top."""
    data = read_mapping(path, empty_ok=empty_ok)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return parse_settings(model, data, str(path))


def shipped_config(relative: Path) -> Path:
    """A shipped config (``configs/demo.yaml``): the working folder's, else the source checkout's."""
    here = Path.cwd() / relative
    return here if here.is_file() else Path(__file__).resolve().parents[3] / relative


def resolved_yaml(config: BaseModel) -> str:
    """The config with every default filled in, as YAML (stable key order): what the run folder keeps."""
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)

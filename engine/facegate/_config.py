"""Operator configuration (config.v1.json): which plugins may load, which recognizer, which store."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _schema
from ._yaml import load_yaml
from .errors import ConfigError


def read_config(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    """Load and validate a configuration; returns it and the folder relative paths resolve from."""
    if isinstance(source, Mapping):
        data, base = dict(source), Path.cwd()
        where = "configuration"
    else:
        path = Path(source)
        base = path.resolve().parent
        where = str(path)
        if path.suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{where}: cannot read configuration: {exc}") from exc
        else:
            doc, problems = load_yaml(path)
            if doc is None:
                raise ConfigError(str(problems[0]))
            data = doc.data
    found = list(_schema.violations("config.v1.json", data))
    if found:
        pointer, message = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConfigError(f"{where} at {pointer or '/'}: {message}{more}")
    return data, base


def resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p

"""Mounting the console into ``facegate serve`` under ``/console`` (one call in the service's app factory).

The operator file's ``service.console`` section says where the users file is (default
``facegate-users.db`` beside the configuration) and which pack folders the console serves
(default: the configuration's ``policy``, one pack or several); ``enabled: false`` leaves the console out.  The
console shares the service's store, so approvals and rule changes go into the same audit chain
as the decisions.  Saved edits reach the running gate at its next reload (SIGHUP or
``POST /v1/admin/reload``) -- and with ``approval.required``, only once approved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PREFIX = "/console"


def mount_console(app: Any, service: Any, config_path: str | Path) -> bool:
    """Mount the console on ``app`` if the configuration enables it and its extra is installed."""
    from .._config import read_config, resolve

    config, base = read_config(config_path)
    section = config.get("service", {}).get("console", {})
    if not section.get("enabled", True):
        return False
    try:
        import argon2  # noqa: F401
        import jinja2  # noqa: F401
    except ImportError:  # `pip install facegate[console]` adds it
        return False
    from starlette.routing import Mount

    from . import create_console
    from ._state import Settings

    configured = config["policy"] if isinstance(config["policy"], list) else [config["policy"]]
    packs = [resolve(base, p) for p in section.get("packs", configured)]
    settings = Settings(packs=packs, users=resolve(base, section.get("users", "facegate-users.db")),
                        store=Path(service.runtime.store.path))
    console = create_console(settings, store=service.runtime.store)
    app.router.routes.append(Mount(PREFIX, app=console, name="console"))
    app.state.console = console.state.console
    return True

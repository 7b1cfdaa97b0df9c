from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facegate.store import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "facegate.db") as s:
        yield s


@pytest.fixture
def unit() -> Callable[..., np.ndarray]:
    """L2-normalised float32 vectors, as the gate hands them to the gallery."""
    rng = np.random.default_rng(20240601)

    def make(dim: int = 128) -> np.ndarray:
        v = rng.standard_normal(dim).astype(np.float32)
        return v / np.linalg.norm(v)

    return make


def decision(n: int = 0, **over: Any) -> dict[str, Any]:
    """A decision record shaped like the gate's."""
    record: dict[str, Any] = {
        "kind": "decision",
        "decision_id": f"dec-{n}",
        "time": f"2025-06-01T08:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
        "policy": {"id": "cn-cac-2023-draft", "version": "1.0.0", "revision": "sha256:" + "ab" * 32},
        "request": {
            "operation": "identify",
            "purpose": "access_control",
            "actor": {"id": "hotel-42", "role": "handler", "sector": "hotel"},
            "subject": {"id": f"guest-{n}", "age": 30},
            "storage": {"raw_image": "discard", "location": "on_device", "retention_days": 30},
        },
        "effect": "permit" if n % 2 else "deny",
        "determining": [{"rule": "r-consent", "provision": "CN23-05", "article": "5"}],
        "obligations": [],
        "errors": [],
    }
    record.update(over)
    return record


@pytest.fixture
def make_decision() -> Callable[..., dict[str, Any]]:
    return decision


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make a file unwritable even for root (``chattr +i``), or skip where that is impossible."""
    undo: list[Callable[[], None]] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o444)
            undo.append(lambda: path.chmod(0o644))
            return
        if shutil.which("chattr") is None:
            pytest.skip("no `chattr` to make a file immutable for root")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make `{path}` immutable here: {done.stderr.decode().strip()}")
        undo.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=False))

    yield make
    for step in reversed(undo):
        step()

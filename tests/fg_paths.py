"""Paths the engine's tests share (a plainly named module, so no conftest shadows it)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "policies" / "example"
SHARED = ROOT.parent / "shared"

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fg_paths import EXAMPLE


@pytest.fixture(scope="session")
def example_policy():
    import facegate

    return facegate.load_policy(EXAMPLE)


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    """A writable copy of the example pack, for tests that break it on purpose."""
    dest = tmp_path / "example"
    shutil.copytree(EXAMPLE, dest)
    return dest

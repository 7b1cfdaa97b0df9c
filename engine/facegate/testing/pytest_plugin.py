"""pytest plugin (entry point ``pytest11``): fixtures for vendors' recognizer tests.

``recognizer_conformance(info, face_images=..., empty_images=..., config=...)`` returns a
:class:`~facegate.testing.ConformanceReport`; call ``.assert_ok()`` on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def recognizer_conformance() -> Callable[..., Any]:
    from ._conformance import check_recognizer

    return check_recognizer

"""Test recognizers importable by name, so the gate's worker processes can build them too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from facegate.testing import FakeRecognizer


class FixedEmbedding:
    """Finds the fake's faces, then returns the embedding its configuration names.

    ``{"values": [...], "dtype": "float64", "shape": [3], "as_list": false}``; ``"nan"``, ``"inf"``
    stand for the non-finite values JSON cannot carry.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.inner = FakeRecognizer({})
        values = [float(v) if isinstance(v, str) else v for v in config.get("values", [1.0, 0.0, 0.0])]
        vector = np.array(values, dtype=config.get("dtype", "float64"))
        if "shape" in config:
            vector = vector.reshape(config["shape"])
        self.vector: Any = vector.tolist() if config.get("as_list") else vector

    def detect(self, image: np.ndarray) -> list[Any]:
        return self.inner.detect(image)

    def embed(self, image: np.ndarray, face: Any) -> Any:
        return self.vector

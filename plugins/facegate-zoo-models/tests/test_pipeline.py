"""The shared two-stage recognizer, driven by stand-in runners (the real runtimes are tested in
their own plugins): configuration defaults, model checks at build time, output shaping."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from facegate.recognition import Face

import facegate_zoo_models as zoo


class Scripted:
    """A runner that returns fixed outputs and remembers what it was given."""

    def __init__(
        self, shape: tuple[int | None, ...], names: list[str], outputs: list[np.ndarray]
    ) -> None:
        self.path = Path(f"/models/{names[0]}.onnx")
        self.input_shape = shape
        self.output_names = tuple(names)
        self.outputs = outputs
        self.blobs: list[np.ndarray] = []

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        self.blobs.append(blob)
        return self.outputs


def yunet_outputs(
    size: int, hits: dict[int, tuple[int, list[float]]]
) -> tuple[list[str], list[np.ndarray]]:
    """Zero heads except, per stride, one cell with score 1 and the given box prediction."""
    names, outputs = [], []
    for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            head = np.zeros((1, (size // stride) ** 2, width), np.float32)
            if stride in hits and kind in ("cls", "obj"):
                head[0, hits[stride][0]] = 1.0
            if stride in hits and kind == "bbox":
                head[0, hits[stride][0]] = hits[stride][1]
            names.append(f"{kind}_{stride}")
            outputs.append(head)
    return names, outputs


def EMBEDDER() -> Scripted:
    return Scripted((1, 3, 112, 112), ["fc1"], [np.ones((1, 128), np.float32)])


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> zoo.Settings:
    return zoo.Settings.from_config({"cache_dir": str(tmp_path_factory.mktemp("models"))})


def test_defaults_are_the_verified_yunet_sface_pair(settings: zoo.Settings) -> None:
    assert settings.detector_path.name.startswith("face_detection_yunet_2023mar_int8bq-")
    assert settings.recognizer_path.name.startswith("face_recognition_sface_2021dec_int8bq-")
    assert (settings.detector_format, settings.score_threshold, settings.nms_threshold) == (
        "yunet",
        0.9,
        0.3,
    )
    assert (settings.recognizer_mean, settings.recognizer_std, settings.recognizer_bgr) == (
        0.0,
        1.0,
        False,
    )


def test_explicit_paths_are_checked_against_the_given_checksum(tmp_path: Path) -> None:
    path = zoo.default_path(zoo.YUNET)
    config = {"detector_path": str(path), "detector_sha256": "ab" * 32, "cache_dir": str(tmp_path)}
    with pytest.raises(zoo.ModelFileError, match="expected abab") as caught:
        zoo.Settings.from_config(config)
    assert f"`{path}`" in str(caught.value)


def test_scrfd_defaults_and_arcface_normalisation(tmp_path: Path) -> None:
    config = {
        "detector_format": "scrfd",
        "recognizer_mean": 127.5,
        "recognizer_std": 127.5,
        "recognizer_channels": "bgr",
        "cache_dir": str(tmp_path),
    }
    s = zoo.Settings.from_config(config)
    assert (s.score_threshold, s.recognizer_mean, s.recognizer_std, s.recognizer_bgr) == (
        0.5,
        127.5,
        127.5,
        True,
    )


def test_a_detector_whose_outputs_do_not_fit_the_format_is_refused_at_build(
    settings: zoo.Settings,
) -> None:
    names, outputs = yunet_outputs(640, {})
    scrfd = dataclasses.replace(settings, detector_format="scrfd")
    with pytest.raises(zoo.ModelFileError, match="has 12 outputs; a `scrfd` detector has 9 or 15"):
        zoo.ZooRecognizer(scrfd, Scripted((1, 3, 640, 640), names, outputs), EMBEDDER())


def test_detect_maps_boxes_back_to_the_image_and_clips_them(settings: zoo.Settings) -> None:
    # 64x64 canvas; stride 32 cell (1, 1) -> centre (48, 48), size 64x64 -> spills past the canvas
    names, outputs = yunet_outputs(64, {32: (3, [0.5, 0.5, np.log(2.0), np.log(2.0)])})
    detector = Scripted((1, 3, 64, 64), names, outputs)
    recognizer = zoo.ZooRecognizer(settings, detector, EMBEDDER())
    faces = recognizer.detect(np.zeros((100, 50, 3), np.uint8))  # scale 0.64
    assert detector.blobs[0].shape == (1, 3, 64, 64)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert (x, y) == pytest.approx((16 / 0.64, 16 / 0.64)) and (x + w, y + h) == pytest.approx(
        (50, 100)
    )
    assert faces[0].score == pytest.approx(1.0) and len(faces[0].landmarks) == 5


def test_embed_feeds_the_aligned_crop_and_returns_a_flat_float32_vector(
    settings: zoo.Settings,
) -> None:
    names, outputs = yunet_outputs(640, {})
    embedder = Scripted(
        (1, 3, 112, 112), ["fc1"], [np.arange(128, dtype=np.float64).reshape(1, 128)]
    )
    recognizer = zoo.ZooRecognizer(settings, Scripted((1, 3, 640, 640), names, outputs), embedder)
    image = np.full((200, 200, 3), 90, np.uint8)
    face = Face((50, 50, 100, 100), 0.99, tuple(map(tuple, zoo.ARCFACE_TEMPLATE + 44)))
    vector = recognizer.embed(image, face)
    assert vector.dtype == np.float32 and vector.shape == (128,)
    blob = embedder.blobs[-1]  # blobs[0] is the build-time smoke run
    assert blob.shape == (1, 3, 112, 112) and blob[0, :, 40:70, 40:70].min() == pytest.approx(90)
    with pytest.raises(ValueError, match="5 landmarks"):
        recognizer.embed(image, Face((50, 50, 100, 100), 0.99))


def test_a_model_that_loads_but_cannot_run_is_refused_at_build(settings: zoo.Settings) -> None:
    names, outputs = yunet_outputs(640, {})

    class Failing(Scripted):
        def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : block_size must be 0\nmore detail")

    with pytest.raises(
        zoo.ModelFileError,
        match=r"does not run: \[ONNXRuntimeError\] : 1 : FAIL : block_size must be 0$",
    ):
        zoo.ZooRecognizer(settings, Failing((1, 3, 640, 640), names, outputs), EMBEDDER())
    silent = Scripted((1, 3, 112, 112), ["fc1"], [])
    with pytest.raises(zoo.ModelFileError, match="does not run: it returned no output") as caught:
        zoo.ZooRecognizer(settings, Scripted((1, 3, 640, 640), names, outputs), silent)
    assert str(caught.value) == "model file `/models/fc1.onnx`: does not run: it returned no output"

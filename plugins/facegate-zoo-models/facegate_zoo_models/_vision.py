"""Pre- and post-processing around the networks, in numpy (and Pillow for the one resize).

Coordinates follow OpenCV: a pixel's integer coordinate is its centre.  Landmarks come in the
order of :class:`facegate.Face`: right eye, left eye, nose, right and left mouth corners *of the
subject*, i.e. image-left eye first -- the order of YuNet, SCRFD and the ArcFace template.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Where ArcFace-family recognizers (SFace among them) expect the 5 landmarks in a 112x112 crop.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_SIZE = 112
STRIDES = (8, 16, 32)

Detections = tuple[
    np.ndarray, np.ndarray, np.ndarray
]  # boxes (n,4) x1y1x2y2, scores (n,), kps (n,5,2)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """The image as a C-contiguous ``uint8`` ``(H, W, 3)`` array; grayscale is replicated."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError("image must be a uint8 numpy array")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3), not {image.shape}")
    return np.ascontiguousarray(image)


def letterbox(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """Scale ``image`` to fit ``width`` x ``height`` keeping its aspect, pad right and bottom
    with black.  Returns the canvas and the scale (canvas pixels per image pixel)."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    if (new_w, new_h) != (w, h):
        from PIL import Image  # imported on first use: importing the plugin stays light

        resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
        image = np.asarray(resized)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = image
    return canvas, scale


def to_blob(image: np.ndarray, *, bgr: bool, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """``(H, W, 3)`` RGB -> ``(1, 3, H, W)`` float32, ``(pixel - mean) / std``."""
    planes = image[:, :, ::-1] if bgr else image
    blob = planes.transpose(2, 0, 1)[None].astype(np.float32)
    if mean:
        blob -= np.float32(mean)
    if std != 1.0:
        blob /= np.float32(std)
    return np.ascontiguousarray(blob)


def decode_yunet(
    outputs: Sequence[np.ndarray],
    names: Sequence[str],
    width: int,
    height: int,
    score_threshold: float,
) -> Detections:
    """YuNet (2023mar) heads -> detections in input-canvas pixels.

    Twelve outputs ``cls/obj/bbox/kps`` at strides 8/16/32, looked up by name, else taken in
    that order; score = sqrt(cls * obj); box centre and landmarks are offsets from the anchor
    cell in strides, box size is ``exp`` of the prediction in strides.
    """
    if len(outputs) != 12:
        raise ValueError(f"a YuNet detector has 12 outputs, this one has {len(outputs)}")
    by_name = dict(zip(names, outputs))
    boxes, scores, points = [], [], []
    for level, stride in enumerate(STRIDES):
        heads = []
        for kind_index, kind in enumerate(("cls", "obj", "bbox", "kps")):
            head = by_name.get(f"{kind}_{stride}")
            heads.append(head if head is not None else outputs[kind_index * 3 + level])
        cls, obj = heads[0].reshape(-1), heads[1].reshape(-1)
        bbox, kps = heads[2].reshape(-1, 4), heads[3].reshape(-1, 10)
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        index = np.flatnonzero(score >= score_threshold)
        cols = width // stride
        anchor = np.stack([index % cols, index // cols], axis=1).astype(np.float32)
        centre = (anchor + bbox[index, :2]) * stride
        size = np.exp(bbox[index, 2:]) * stride
        boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
        scores.append(score[index])
        points.append((kps[index].reshape(-1, 5, 2) + anchor[:, None, :]) * stride)
    return _join(boxes, scores, points)


def decode_scrfd(
    outputs: Sequence[np.ndarray], width: int, height: int, score_threshold: float
) -> Detections:
    """SCRFD (insightface) heads with landmarks -> detections in input-canvas pixels.

    Nine outputs (scores, boxes, landmarks at strides 8/16/32, two anchors per cell) or fifteen
    (strides 8..128, one anchor); boxes are left/top/right/bottom distances in strides.
    """
    if len(outputs) not in (9, 15):
        raise ValueError(
            f"an SCRFD detector with landmarks has 9 or 15 outputs, this one has {len(outputs)}"
        )
    levels = len(outputs) // 3
    strides, anchors = ((8, 16, 32), 2) if levels == 3 else ((8, 16, 32, 64, 128), 1)
    boxes, scores, points = [], [], []
    for level, stride in enumerate(strides):
        score = outputs[level].reshape(-1)
        dist = outputs[level + levels].reshape(-1, 4) * stride
        kps = outputs[level + 2 * levels].reshape(-1, 5, 2) * stride
        cols, rows = width // stride, height // stride
        ys, xs = np.mgrid[:rows, :cols]
        grid = np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride
        centres = np.repeat(grid, anchors, axis=0).astype(np.float32)
        index = np.flatnonzero(score >= score_threshold)
        c = centres[index]
        boxes.append(np.concatenate([c - dist[index, :2], c + dist[index, 2:]], axis=1))
        scores.append(score[index])
        points.append(c[:, None, :] + kps[index])
    return _join(boxes, scores, points)


def _join(
    boxes: list[np.ndarray], scores: list[np.ndarray], points: list[np.ndarray]
) -> Detections:
    return (
        np.concatenate(boxes).astype(np.float64).reshape(-1, 4),
        np.concatenate(scores).astype(np.float64).reshape(-1),
        np.concatenate(points).astype(np.float64).reshape(-1, 5, 2),
    )


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression on ``x1, y1, x2, y2`` boxes; indices, best first."""
    order = np.argsort(-scores, kind="stable")
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        keep.append(best)
        lo = np.maximum(boxes[best, :2], boxes[rest, :2])
        hi = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        iou = inter / np.maximum(area[best] + area[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return keep


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping ``src`` onto ``dst``
    (Umeyama 1991), as a 2x3 matrix."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[-1] = -1  # a reflection fits better; take the best proper rotation instead
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = float(s @ d) / variance if variance > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def warp_affine(image: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear ``cv2.warpAffine`` with a black border: output pixel ``p`` samples the image
    at ``matrix^-1 p``.  Returns float32 ``(height, width, 3)``."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    ys, xs = np.mgrid[:height, :width].astype(np.float64)
    sx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    sy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    x0, y0 = np.floor(sx).astype(np.intp), np.floor(sy).astype(np.intp)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    h, w = image.shape[:2]
    out = np.zeros((height, width, 3), np.float64)
    for dy, dx, weight in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = x0 + dx, y0 + dy
        inside = ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))[..., None]
        pixel = image[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
        out += np.where(inside, pixel * weight, 0.0)
    return out.astype(np.float32)


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 ArcFace-template crop of the face with these 5 landmarks (float32 RGB)."""
    matrix = similarity_transform(np.asarray(landmarks, np.float64), ARCFACE_TEMPLATE)
    return warp_affine(image, matrix, ARCFACE_SIZE, ARCFACE_SIZE)

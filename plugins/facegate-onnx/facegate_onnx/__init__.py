"""facegate-onnx: the default recognizer -- YuNet detection + SFace 128-D embeddings on ONNX Runtime.

Registers the recognizer ``onnx`` through the ``facegate`` entry-point group.  It declares
``detect``, ``verify``, ``identify`` and ``enroll``; the gate composes the last three from
:meth:`detect` and :meth:`embed` and does every comparison itself.  ``onnxruntime`` is imported
only when the factory builds a recognizer, so discovering the plugin stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from facegate.hookspecs import hookimpl
from facegate_zoo_models import ModelFileError, Settings, ZooRecognizer, recognizer_info

if TYPE_CHECKING:
    import onnxruntime

__version__ = "0.1.0"
__all__ = ["INFO", "OnnxRunner", "make", "register_recognizers"]


class OnnxRunner:
    """One ONNX Runtime session on the CPU, wrapped as a :class:`facegate_zoo_models.Runner`."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = path
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Without this the int8 graphs run about twice as slow: ORT would keep the Q/DQ pairs.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        # Idle intra-op threads would spin for a while after each run, taking a core from the
        # Python pre/post-processing (and from the gate) on small machines: measured on 2 cores,
        # detect + embed of one photo 31.7 ms spinning vs 24.3 ms without.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise ModelFileError(path, f"onnx runtime cannot load it: {first_line}") from exc
        first = self._session.get_inputs()[0]
        self._input = first.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in first.shape)
        self.output_names = tuple(o.name for o in self._session.get_outputs())

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        return list(self._session.run(None, {self._input: blob}))

    @property
    def session(self) -> onnxruntime.InferenceSession:
        return self._session


def make(config: Mapping[str, Any]) -> ZooRecognizer:
    """Build the recognizer: verify/prepare the model files, then open two ORT sessions."""
    # ONNX Runtime (>= 1.2x on Linux) otherwise keeps a telemetry SQLite database open for
    # writing under ~/.cache/Microsoft; the gate's confined workers refuse to run with that.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    settings = Settings.from_config(config)
    return ZooRecognizer(
        settings,
        OnnxRunner(settings.detector_path, settings.threads),
        OnnxRunner(settings.recognizer_path, settings.threads),
    )


INFO = recognizer_info(
    id="onnx",
    version=__version__,
    factory=make,
    description="YuNet detector + SFace 128-D recognizer (OpenCV Zoo) on ONNX Runtime, CPU",
)


@hookimpl
def register_recognizers(register: Callable[..., None]) -> None:
    register(INFO)

"""facegate-openvino: YuNet detection + SFace 128-D embeddings on OpenVINO (CPU).

Registers the recognizer ``openvino`` through the ``facegate`` entry-point group, with the same
operations, configuration, model files and threshold as ``onnx``; only the runtime differs.
``openvino`` is imported only when the factory builds a recognizer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from facegate.hookspecs import hookimpl
from facegate_zoo_models import ModelFileError, Settings, ZooRecognizer, recognizer_info

__version__ = "0.1.0"
__all__ = ["INFO", "OpenVinoRunner", "make", "register_recognizers"]


class OpenVinoRunner:
    """One network compiled for the OpenVINO CPU plugin, as a :class:`facegate_zoo_models.Runner`."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = path
        import openvino

        # f32 throughout: on CPUs with bf16 support OpenVINO may otherwise lower the precision,
        # and the embeddings would drift from ONNX Runtime's.
        properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            properties["INFERENCE_NUM_THREADS"] = threads
        try:
            core = openvino.Core()
            self._compiled = core.compile_model(core.read_model(str(path)), "CPU", properties)
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line reports
            first_line = next(
                (line for line in str(exc).splitlines() if line.strip()), type(exc).__name__
            )
            raise ModelFileError(path, f"openvino cannot load it: {first_line.strip()}") from exc
        first = self._compiled.inputs[0].get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in first)
        self.output_names = tuple(o.get_any_name() for o in self._compiled.outputs)

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        # A request per call: infer requests are not thread-safe, and creating one is cheap.
        request = self._compiled.create_infer_request()
        request.infer({0: blob})
        return [request.get_output_tensor(i).data.copy() for i in range(len(self.output_names))]


def make(config: Mapping[str, Any]) -> ZooRecognizer:
    """Build the recognizer: verify/prepare the model files, then compile both for the CPU."""
    settings = Settings.from_config(config)
    return ZooRecognizer(
        settings,
        OpenVinoRunner(settings.detector_path, settings.threads),
        OpenVinoRunner(settings.recognizer_path, settings.threads),
    )


INFO = recognizer_info(
    id="openvino",
    version=__version__,
    factory=make,
    description="YuNet detector + SFace 128-D recognizer (OpenCV Zoo) on OpenVINO, CPU",
)


@hookimpl
def register_recognizers(register: Callable[..., None]) -> None:
    register(INFO)

"""The public surface: a sorted __all__, and `import facegate` stays light."""

from __future__ import annotations

import subprocess
import sys

import facegate


def test_all_is_sorted_and_exported():
    assert facegate.__all__ == sorted(facegate.__all__)
    for name in facegate.__all__:
        assert hasattr(facegate, name), name


def test_import_loads_no_vision_library():
    code = (
        "import sys, facegate\n"
        "heavy = {'onnxruntime', 'openvino', 'dlib', 'cv2', 'PIL', 'skimage', 'torch'}\n"
        "print(sorted(heavy & set(m.split('.')[0] for m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_exception_derives_from_facegate_error():
    for name in ("PolicyError", "RequestError", "PluginError", "RecognizerError", "ConfigError", "StoreError", "AuditWriteError"):
        assert issubclass(getattr(facegate, name), facegate.FacegateError)

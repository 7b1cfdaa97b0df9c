"""The public surface: a sorted __all__, and `import facegate` stays light."""

from __future__ import annotations

import subprocess
import sys

import facegate
from fg_paths import EXAMPLE


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


def test_deciding_from_the_command_line_loads_neither_gate_nor_numpy(tmp_path):
    # `facegate check|decide|test` import only what deciding needs: a subprocess, so nothing
    # this test session already imported can hide an import.
    request = tmp_path / "request.json"
    request.write_text('{"operation": "verify", "purpose": "attendance"}')
    code = (
        "import sys\n"
        "from facegate import cli\n"
        "def heavy(extra):\n"
        "    names = {'numpy', 'celpy', 'sqlite3', 'onnxruntime', 'openvino', 'dlib', 'PIL', *extra}\n"
        "    loaded = {m.split('.')[0] for m in sys.modules} | {m for m in sys.modules if m.startswith('facegate.')}\n"
        "    return sorted(names & loaded), sorted(m for m in loaded if m in ('facegate.gate', 'facegate.store'))\n"
        f"cli.main(['decide', '--policy', {str(EXAMPLE)!r}, '--request', {str(request)!r}])\n"
        f"cli.main(['check', {str(EXAMPLE)!r}])\n"
        "print('decide, check:', heavy({'jsonschema'}))\n"  # a valid pack and request: nothing to explain
        f"cli.main(['test', {str(EXAMPLE)!r}])\n"  # its property proofs explain invalid requests (jsonschema)
        "print('test:', heavy(()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    lines = [line for line in out.splitlines() if line.startswith(("decide, check:", "test:"))]
    assert lines == ["decide, check: ([], [])", "test: ([], [])"], out


def test_gate_is_loaded_on_first_use():
    code = "import sys, facegate\nassert 'facegate.gate' not in sys.modules\nfacegate.Gate\nprint('facegate.gate' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"


def test_every_exception_derives_from_facegate_error():
    for name in ("PolicyError", "RequestError", "PluginError", "RecognizerError", "ConfigError", "StoreError", "AuditWriteError"):
        assert issubclass(getattr(facegate, name), facegate.FacegateError)

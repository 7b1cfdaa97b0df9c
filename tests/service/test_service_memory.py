"""Each service worker lets glibc keep large allocations in its heap (``_server.keep_large_allocations``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from facegate.service import _server

_PROBE = """
import ctypes, sys
from facegate.service._server import keep_large_allocations
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                               "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
if sys.argv[1] == "keep":
    assert keep_large_allocations()
before = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)  # a decoded photo's worth
print(libc.mallinfo2().hblks - before)  # chunks with a mapping of their own
libc.free(block)
"""


def _glibc() -> bool:
    try:
        import ctypes

        ctypes.CDLL(None).mallinfo2  # noqa: B018 - glibc 2.33 or later
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


@pytest.mark.skipif(not _glibc(), reason="glibc's malloc only")
def test_a_large_block_comes_from_the_heap_once_the_worker_keeps_large_allocations():
    def mapped(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=60, check=True)
        return int(out.stdout.strip())

    assert mapped("default") == 1  # glibc's default: a mapping of its own, unmapped (and faulted in again) each time
    assert mapped("keep") == 0


def test_elsewhere_the_allocator_is_left_alone(monkeypatch):
    monkeypatch.setattr(_server.sys, "platform", "darwin")
    assert _server.keep_large_allocations() is False

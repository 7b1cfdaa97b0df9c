"""The storage interface: what the gate relies on, and the public names."""

from __future__ import annotations

import subprocess
import sys

import facegate.store as store_package
from facegate.store import AuditLog, ConsentRegistry, Gallery, SQLiteStore, Store


def test_the_sqlite_store_implements_the_protocols(store):
    assert isinstance(store, Store)
    assert isinstance(store.audit, AuditLog)
    assert isinstance(store.consent, ConsentRegistry)
    assert isinstance(store.gallery, Gallery)


def test_public_names_are_sorted_and_importable():
    assert store_package.__all__ == sorted(store_package.__all__, key=lambda n: (not n.isupper(), n))
    for name in store_package.__all__:
        assert hasattr(store_package, name)


def test_store_errors_belong_to_the_core_tree():
    from facegate.errors import AuditWriteError, FacegateError, StoreError

    assert store_package.AuditWriteError is AuditWriteError and store_package.StoreError is StoreError
    assert issubclass(AuditWriteError, StoreError) and issubclass(StoreError, FacegateError)


def test_repr_and_context_manager(tmp_path):
    with SQLiteStore(tmp_path / "r.db") as store:
        assert "open" in repr(store)
    assert store.closed and "closed" in repr(store)


def test_a_store_refuses_a_different_mask_key(tmp_path):
    import pytest

    from facegate.store import StoreError

    path = tmp_path / "k.db"
    SQLiteStore(path, mask_key=b"k" * 32).close()
    with pytest.raises(StoreError, match="not the key"):
        SQLiteStore(path, mask_key=b"q" * 32)
    with pytest.raises(StoreError, match="external mask key"):
        SQLiteStore(path)
    with SQLiteStore(path, mask_key=b"k" * 32) as store:
        assert store.audit.pseudonym("alice").startswith("hmac-sha256:")
        store.audit.append({"kind": "decision", "subject": {"id": "alice"}})
    assert b"k" * 32 not in path.read_bytes()
    with SQLiteStore(path, readonly=True) as store:  # an auditor without the key can still verify
        assert store.audit.verify().ok
        with pytest.raises(StoreError, match="mask key is kept outside"):
            store.audit.pseudonym("alice")


def test_importing_the_store_loads_no_vision_library():
    code = "import sys, facegate.store; print(sorted(m for m in ('cv2', 'onnxruntime', 'dlib', 'faiss') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"

"""The store's exceptions, taken from the core's tree (``facegate.errors``).

::

    StoreError          evidence storage failed or refused (consent registry, gallery, opening)
    └── AuditWriteError a record could not be durably written to the audit log: the gate denies

The fallback below only exists so that the store can be imported and tested on its own in a
tree where the core's ``errors`` module has not landed yet; it keeps the same names and shape.
"""

from __future__ import annotations

try:
    from facegate.errors import AuditWriteError, StoreError
except ImportError:  # pragma: no cover - the core's exception tree is not there

    class StoreError(Exception):  # type: ignore[no-redef]
        """Evidence storage (audit log, consent registry, gallery) failed."""

    class AuditWriteError(StoreError):  # type: ignore[no-redef]
        """A record could not be durably written to the audit log; the gate denies the request."""


__all__ = ["AuditWriteError", "StoreError"]

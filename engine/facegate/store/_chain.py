"""The hash chain, checked: one checker for the database's rows and for ``export_jsonl`` files.

Record ``n``'s hash is ``sha256(envelope(n, prev, body))``; the checker names the sequence number
of the first record whose hash, ``prev`` link or position is wrong (see ``_audit`` for writing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from ._canonical import GENESIS, canonical_json, envelope
from ._interface import AuditReceipt, VerifyReport

MAX_PROBLEMS = 100  # a verification lists at most this many problems, then counts the rest


def chain_hash(seq: int, prev: str, body: str) -> str:
    return hashlib.sha256(envelope(seq, prev, body).encode("utf-8")).hexdigest()


class ChainChecker:
    """Checks a sequence of (seq, prev, hash, body) rows; shared by ``verify`` and ``verify_lines``."""

    def __init__(self, *, anchor: AuditReceipt | None = None, gaps_allowed: bool = False) -> None:
        self.anchor = anchor
        self.anchor_seen: str | None = None  # the hash found at the anchor's seq
        self.gaps_allowed = gaps_allowed
        self.checked = 0
        self.problems: list[str] = []
        self.dropped = 0
        self.last: AuditReceipt | None = None

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        else:
            self.dropped += 1

    def check(self, seq: int, prev: str, digest: str, body: str) -> None:
        if chain_hash(seq, prev, body) != digest:
            self.problem(f"seq {seq}: hash does not match the record's content (record edited)")
        last = self.last
        expected = 1 if last is None else last.seq + 1
        if self.anchor is not None and seq == self.anchor.seq:
            self.anchor_seen = digest
        if seq != expected and not (self.gaps_allowed and seq > expected):
            if seq > expected:
                self.problem(f"seq {seq}: expected seq {expected} (records {expected}..{seq - 1} removed)")
            else:
                self.problem(f"seq {seq}: out of order after seq {expected - 1} (records reordered)")
        elif last is None and seq == 1 and prev != GENESIS:
            self.problem(f"seq {seq}: first record does not start the chain (prev is not the genesis hash)")
        elif last is not None and seq == expected and prev != last.hash:
            self.problem(f"seq {seq}: prev does not match the hash of seq {last.seq} (record removed, reordered or edited)")
        self.last = AuditReceipt(seq, digest)
        self.checked += 1

    def report(self) -> VerifyReport:
        anchor = self.anchor
        if anchor is not None:
            if self.anchor_seen is None:
                end = 0 if self.last is None else self.last.seq
                self.problem(f"seq {anchor.seq}: anchored record is missing (log truncated after seq {end})")
            elif self.anchor_seen != anchor.hash:
                self.problem(f"seq {anchor.seq}: hash differs from the anchor (record or chain rewritten)")
        problems = list(self.problems)
        if self.dropped:
            problems.append(f"... and {self.dropped} more problems")
        return VerifyReport(ok=not problems, checked=self.checked, problems=problems, head=self.last)


def _raw_body(line: str) -> str | None:
    """The record's exact text in a line written by ``export_jsonl`` (``None`` if reformatted)."""
    if line.startswith('{"hash":"') and line[73:83] == '","prev":"' and line[147:158] == '","record":':
        end = line.rfind(',"seq":')
        if end > 158:
            return line[158:end]
    return None


def _raw_line(line: str) -> tuple[int, str, str, str] | None:
    """(seq, prev, hash, body) of a line in ``export_jsonl``'s exact layout, without parsing the body."""
    body = _raw_body(line)
    seq = line[line.rfind(',"seq":') + 7:-1]
    if body is None or not line.endswith("}") or not seq.isdigit():
        return None
    return int(seq), line[83:147], line[9:73], body


def verify_lines(lines: Iterable[str], *, anchor: AuditReceipt | None = None, gaps_allowed: bool = False) -> VerifyReport:
    """Verify an ``export_jsonl`` file without the database (set ``gaps_allowed`` for a filtered export)."""
    checker = ChainChecker(anchor=anchor, gaps_allowed=gaps_allowed)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        line = line.rstrip("\r\n")
        try:
            item = json.loads(line)
            seq, prev, digest = int(item["seq"]), str(item["prev"]), str(item["hash"])
            body = _raw_body(line) or canonical_json(item["record"])
        except RecursionError:
            found = _raw_line(line)  # the exporter's layout needs no parsing to be hashed
            if found is None:
                checker.problem(f"line {number}: nested too deeply to read")
                continue
            seq, prev, digest, body = found
            checker.problem(f"seq {seq}: record is nested too deeply to read (forged)")
        except (ValueError, KeyError, TypeError):
            checker.problem(f"line {number}: not an export line")
            continue
        checker.check(seq, prev, digest, body)
    return checker.report()

"""Crash safety: SIGKILL a writer at random points; every receipt it handed out is in the log.

Each round starts a writer process whose threads append decision records and report each
receipt (seq, hash, decision id) on a pipe only after ``append`` returned.  The parent kills
it with SIGKILL after a random number of receipts, reopens the file, verifies the whole chain
and checks that every reported receipt is there with the same hash.  The next round appends
to the same file, so the chain must also continue across every crash.

Size: ROUNDS kills (PG_ROUNDS on PostgreSQL), each after 50..KILL_AFTER_MAX receipts, with
WRITER_THREADS threads appending concurrently (so many appends are in flight, mid-commit, at
each kill).  Runs on both backends: on PostgreSQL the kill also drops the writer's connection
in the middle of its transaction.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from facegate.store import open_store

ROUNDS = 20
PG_ROUNDS = 8
KILL_AFTER_MAX = 2000
WRITER_THREADS = 8

WRITER = r"""
import os, sys, threading
from facegate.store import open_store

store = open_store(sys.argv[1])
tag = sys.argv[2]

def work(t):
    i = 0
    while True:
        did = f"{tag}-{t}-{i}"
        receipt = store.audit.append({"kind": "decision", "decision_id": did, "effect": "permit",
                                      "request": {"subject": {"id": did}, "purpose": "access_control"},
                                      "determining": [{"rule": "r", "provision": "CN23-05", "article": "5"}]})
        os.write(1, f"{receipt.seq} {receipt.hash} {did}\n".encode())  # one write: atomic on a pipe
        i += 1

for t in range(int(sys.argv[3])):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def _round(path: Path | str, tag: str, kill_after: int) -> list[tuple[int, str, str]]:
    reported: list[tuple[int, str, str]] = []
    with subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(WRITER_THREADS)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        killed = threading.Event()

        def kill() -> None:
            if not killed.is_set():
                killed.set()
                os.kill(child.pid, signal.SIGKILL)

        watchdog = threading.Timer(60, kill)  # a writer that never gets going must not hang the suite
        watchdog.start()
        try:
            for line in child.stdout:  # after the kill: drains what was written before it, then EOF
                seq, digest, did = line.decode().split()
                reported.append((int(seq), digest, did))
                if len(reported) >= kill_after:
                    kill()
        finally:
            watchdog.cancel()
            kill()
            child.wait()
        stderr = child.stderr.read().decode()
    assert child.returncode == -signal.SIGKILL, stderr
    assert len(reported) >= kill_after, f"writer stopped early: {stderr}"
    return reported


def test_sigkilled_writers_lose_no_receipted_decision(backend):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = backend.target()
    open_store(path).close()
    rounds = ROUNDS if backend.name == "sqlite" else PG_ROUNDS
    reported: list[tuple[int, str, str]] = []
    for n in range(rounds):
        reported += _round(path, f"r{n}", rng.randint(50, KILL_AFTER_MAX))
    with backend.open(path, readonly=True) as store:
        report = store.audit.verify()
        logged = {row["seq"]: (row["hash"], row["record"]["decision_id"]) for row in store.audit.query()}
        pseudonym = store.audit.pseudonym
    assert report.ok, (seed, report.problems)
    missing = [r for r in reported if logged.get(r[0], (None, None))[0] != r[1]]
    assert not missing, f"seed {seed}: {len(missing)} receipted decisions not in the log, e.g. {missing[:3]}"
    assert {logged[seq][1] for seq, _, _ in reported} == {did for _, _, did in reported}
    assert len(logged) >= len(reported) > rounds * 50  # thousands of decisions across the rounds
    assert pseudonym("r0-0-0") != "r0-0-0"
    print(f"crash test ({backend.name}): seed {seed}, {rounds} kills, {len(reported)} receipted, {len(logged)} logged")


def test_a_round_reports_receipts_from_the_start_of_the_chain(tmp_path):
    """The harness itself: receipts arrive, start at seq 1 and are unique."""
    reported = _round(tmp_path / "one.db", "x", 10)
    seqs = [seq for seq, _, _ in reported]
    assert min(seqs) == 1 and len(set(seqs)) == len(seqs)

"""1:N identify over a 100,000-template gallery: facegate's numpy path against faiss IndexFlatIP.

    python benchmarks/gallery_identify.py                       # 100,000 x 128-D, 300 probes
    python benchmarks/gallery_identify.py --templates 1000000 --dim 512
    pip install faiss-cpu threadpoolctl                          # for the comparison and BLAS info

The gallery is filled through ``SQLiteStore.gallery.enroll_many`` (one transaction), so the
first ``identify`` pays for loading the file into the in-memory matrix; that load is reported
separately.  Then each probe -- a template with noise, L2-normalised as the gate passes it --
is timed end to end through ``gallery.identify(k=5, threshold=0.5)``: the cache freshness check
against the file, the matrix-vector product, ``argpartition``, the retention mask and building
the ``Match`` list.  ``faiss.IndexFlatIP.search`` (exact inner product, the same answer) runs
on the same matrix and probes in the same run, with one OpenMP thread and with its default;
both must return the same top template.  The ratio column is against faiss with one thread.
faiss is only a benchmark dependency; without it that row is skipped.

BLAS threads matter at this size: the numbers say which library and how many threads ran.
On machines where ``OPENBLAS_CORETYPE`` is forced, run once with it unset to see the default
kernel (``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from facegate.store import SQLiteStore

GOAL_MS = 10.0


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: unknown (pip install threadpoolctl)"
    pools = [f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} x{p.get('num_threads')}"
             for p in threadpool_info() if p.get("user_api") == "blas"]
    return "BLAS: " + ("; ".join(pools) or "none found")


def timed(fn: Any, probes: np.ndarray) -> tuple[list[float], list[Any]]:
    times, answers = [], []
    for probe in probes:
        t0 = time.perf_counter()
        answers.append(fn(probe))
        times.append(time.perf_counter() - t0)
    return times, answers


def summary(name: str, times: list[float], base: float | None) -> str:
    ms = sorted(t * 1e3 for t in times)
    median, p95 = statistics.median(ms), ms[int(len(ms) * 0.95) - 1]
    ratio = f"{median / base:6.2f}x" if base else "      "
    return f"{name:<34} {median:8.3f} {p95:8.3f} {len(ms) / sum(times):9.0f}   {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None, help="directory for the database (default: a temp dir)")
    args = parser.parse_args()

    rng = np.random.default_rng(2024)
    matrix = rng.standard_normal((args.templates, args.dim), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    truth = rng.integers(0, args.templates, args.probes)
    noise = rng.standard_normal((args.probes, args.dim), dtype=np.float32) * np.float32(0.3 / np.sqrt(args.dim))
    probes = matrix[truth] + noise
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)

    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cpus; {blas_info()}")
    print(f"gallery: {args.templates:,} templates x {args.dim}-D float32, {args.probes} probes, k=5")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, SQLiteStore(Path(tmp) / "g.db", log_store_events=False) as store:
        t0 = time.perf_counter()
        stamps = {"purpose": "access_control", "consent_id": None, "retention_days": 365, "location": "server",
                  "model_id": "bench"}
        for start in range(0, args.templates, 20_000):
            store.gallery.enroll_many({**stamps, "subject_id": f"s{i}", "vector": matrix[i]}
                                      for i in range(start, min(start + 20_000, args.templates)))
        enrolled = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.gallery.identify(probes[0], k=5, threshold=0.5)
        loaded = time.perf_counter() - t0
        size = (Path(tmp) / "g.db").stat().st_size
        print(f"enroll_many: {enrolled:.2f} s ({args.templates / enrolled:,.0f} templates/s); "
              f"first identify (loads the matrix): {loaded * 1e3:.0f} ms; file {size / 2**20:.0f} MiB")

        cosine_times, cosine_answers = timed(lambda p: store.gallery.identify(p, k=5, threshold=0.5), probes)
        euclid_times, _ = timed(lambda p: store.gallery.identify(p, k=5, threshold=1.0, metric="euclidean"), probes)
        hits = sum(1 for ans, t in zip(cosine_answers, truth) if ans and ans[0].subject_id == f"s{t}")

    def bare(p: np.ndarray) -> np.ndarray:
        scores = matrix @ p
        top = np.argpartition(scores, -5)[-5:]
        return top[np.argsort(-scores[top])]

    bare_times, _ = timed(bare, probes)
    rows = [("numpy BLAS matvec + argpartition", bare_times)]
    agree = None
    try:
        import faiss
    except ImportError:
        faiss = None
        print("faiss: not installed (pip install faiss-cpu) -- comparison row skipped")
    if faiss is not None:
        index = faiss.IndexFlatIP(args.dim)
        index.add(matrix)
        threads = faiss.omp_get_max_threads()
        faiss_times, faiss_answers = timed(lambda p: index.search(p[None, :], 5)[1][0], probes)
        faiss.omp_set_num_threads(1)
        single_times, _ = timed(lambda p: index.search(p[None, :], 5)[1][0], probes)
        faiss.omp_set_num_threads(threads)
        agree = sum(1 for ans, f in zip(cosine_answers, faiss_answers) if ans and ans[0].subject_id == f"s{f[0]}")
        rows[:0] = [(f"faiss {faiss.__version__} IndexFlatIP (x1)", single_times),
                    (f"faiss {faiss.__version__} IndexFlatIP (x{threads})", faiss_times)]
    base = statistics.median(rows[0][1]) * 1e3
    print(f"{'':<34} {'p50 ms':>8} {'p95 ms':>8} {'queries/s':>9}   vs {rows[0][0].split(' (')[0]}")
    for name, times in rows:
        print(summary(name, times, base))
    print(summary("facegate identify, cosine", cosine_times, base))
    print(summary("facegate identify, euclidean", euclid_times, base))
    median = statistics.median(cosine_times) * 1e3
    print(f"top-1 is the probe's source template: {hits}/{args.probes}"
          + (f"; same top-1 as faiss: {agree}/{args.probes}" if agree is not None else ""))
    print(f"goal: identify over {args.templates:,} x {args.dim}-D <= {GOAL_MS:g} ms -> "
          f"{'met' if median <= GOAL_MS else 'NOT met'} (median {median:.2f} ms)")


if __name__ == "__main__":
    main()

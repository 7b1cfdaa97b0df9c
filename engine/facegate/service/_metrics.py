"""Prometheus metrics of one service process (``GET /metrics``).

Each app has its own registry, so several apps in one process (tests) do not collide.  With
several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before starting
``facegate serve``: every worker then writes its samples there and ``/metrics`` sums them
(prometheus_client's multiprocess mode); without it, each scrape sees the worker that answered.

The per-request samples (request latency, decisions, requests in flight) are tallied in plain
Python and handed to prometheus_client by :meth:`Metrics.refresh` -- every second (the service's
timer), on every scrape of this process and on shutdown.  A sample in multiprocess mode is a
locked write to a memory-mapped file; seven of them per decision cost more than the decision's
policy evaluation.  So a scrape sees the answering process's samples up to the scrape, and
another worker's up to a second old.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, *, audit_pending: Callable[[], float], worker_restarts: int = 0,
                 audit_counts: Callable[[], tuple[int, int]] | None = None) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        reg = None if self.multiprocess else self.registry
        if self.multiprocess:
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        self.decisions = Counter("facegate_decisions", "Decisions made, by effect, reason and determining provision",
                                 ("effect", "reason", "provision"), registry=reg)
        self.requests = Histogram("facegate_http_request_duration_seconds", "Time to answer an HTTP request",
                                  ("route", "method", "status"), buckets=_LATENCY, registry=reg)
        self.gate_seconds = Histogram("facegate_gate_process_seconds",
                                      "Gate.process wall time (decide, audit write-ahead, recognizer, outcome record) by operation and status",
                                      ("operation", "status"), buckets=_LATENCY, registry=reg)
        self.decide_seconds = Histogram("facegate_decide_seconds", "Policy evaluation time of one decision (no I/O)",
                                        buckets=(0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005, 0.01), registry=reg)
        self.recognizer_seconds = Histogram(
            "facegate_recognizer_seconds",
            "Gate.process time minus the decision's own evaluation, for executed operations: recognizer work plus the two audit writes",
            ("operation",), buckets=_LATENCY, registry=reg)
        self.refusals = Counter("facegate_refusals", "Calls refused by authentication or authorisation", ("reason",), registry=reg)
        self.rejected = Counter("facegate_rejected_input", "Requests refused for their input (4xx before the gate)", ("status",), registry=reg)
        self.reloads = Counter("facegate_reloads", "Pack/config reloads by result", ("result",), registry=reg)
        self.worker_restarts = Gauge("facegate_worker_restarts", "Service worker processes restarted by the supervisor since start",
                                     registry=reg, multiprocess_mode="max")
        self.worker_restarts.set(worker_restarts)
        self.audit_pending = Gauge("facegate_audit_queue_depth", "Audit records handed to the log and not yet durably committed",
                                   registry=reg, multiprocess_mode="livesum")
        self.inflight = Gauge("facegate_requests_in_flight", "Requests being handled", registry=reg, multiprocess_mode="livesum")
        self._audit_pending = audit_pending
        # Group commit at work: records / commits is the mean number of records sharing one fsync.
        self.audit_records = Gauge("facegate_audit_records", "Audit records this process's requests appended since start",
                                   registry=reg, multiprocess_mode="livesum")
        self.audit_commits = Gauge("facegate_audit_commits", "Commits (each one fsync) this process's audit writer made since start",
                                   registry=reg, multiprocess_mode="livesum")
        self._audit_counts = audit_counts
        self._registry_arg = reg
        # One series per worker (``pid`` label) in multiprocess mode: how evenly the workers share the clients.
        # Made on the first refresh after the server sets ``connections_open``: a worker's series appears
        # once it serves (a gauge's series exists, at 0, from the moment it is made).
        self.connections: Gauge | None = None
        self.connections_open: Callable[[], int] | None = None

        self._children: dict[tuple[Any, ...], Any] = {}  # labelled series, looked up once (``labels`` takes a lock each call)
        self.in_flight = 0  # requests being handled now; ``refresh`` copies it to the gauge
        self._counts: dict[Any, int] = {}  # counter child -> increments not yet handed over
        self._observed: dict[Any, list[float]] = {}  # histogram child -> observations not yet handed over

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            if len(self._children) < 10_000:  # label values are bounded (routes, statuses, provisions); this is a guard
                self._children[key] = child
        return child

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._observe(self._child(self.requests, route, method, str(status)), seconds)

    def count_decision(self, d: Any) -> None:
        determining = d.determining
        if len(determining) == 1:
            provisions: Any = (determining[0]["provision"],)
        else:
            provisions = sorted({det["provision"] for det in determining}) or ("",)
        effect, reason = str(d.effect), str(d.reason)
        counts = self._counts
        for provision in provisions:
            child = self._child(self.decisions, effect, reason, provision)
            counts[child] = counts.get(child, 0) + 1
        self._observe(self.decide_seconds, d.duration_us / 1e6)

    def _observe(self, histogram: Any, value: float) -> None:
        pending = self._observed.get(histogram)
        if pending is None:
            pending = self._observed[histogram] = []
        pending.append(value)

    def _hand_over(self) -> None:
        """Give prometheus_client the samples tallied since the last call (one write per series and bucket)."""
        counts, self._counts = self._counts, {}
        observed, self._observed = self._observed, {}
        for child, n in counts.items():
            child.inc(n)
        for histogram, values in observed.items():
            _observe_many(histogram, values)

    def refresh(self) -> None:
        """Hand over the tallied samples and set the gauges.  Each worker does this every second (``_app``),
        so a multiprocess scrape sums every worker's values, not only those of the one answering."""
        self._hand_over()
        self.inflight.set(self.in_flight)
        self.audit_pending.set(self._audit_pending())
        if self.connections_open is not None:
            if self.connections is None:
                self.connections = Gauge("facegate_http_connections_open", "HTTP connections this worker process holds open",
                                         registry=self._registry_arg, multiprocess_mode="liveall")
            self.connections.set(self.connections_open())
        if self._audit_counts is not None:
            records, commits = self._audit_counts()
            self.audit_records.set(records)
            self.audit_commits.set(commits)

    def render(self) -> bytes:
        self.refresh()
        return generate_latest(self.registry)


def _observe_many(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` for each of ``values``, as one increment per bucket and one of the sum.

    Uses the histogram's own bounds and values (``_upper_bounds``, ``_buckets``, ``_sum``: what its
    ``observe`` updates); a prometheus_client without them gets the values one by one.
    """
    bounds, buckets, total = (getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1  # the first bound >= value, as ``observe`` finds it
    total.inc(math.fsum(values))
    for bucket, n in zip(buckets, counts, strict=True):
        if n:
            bucket.inc(n)

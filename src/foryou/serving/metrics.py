"""Prometheus metrics of the service (prometheus-client), summed over every worker of the server.

`foryou serve --workers N` (N > 1) sets PROMETHEUS_MULTIPROC_DIR before the workers start: each then writes its
values to files there and /metrics reads them all (`MultiProcessCollector`), so a counter is the server's total
whichever worker answers. With one worker, or an app built in-process, the app's own registry is read.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """Latency per route, requests by status, fallbacks, events ingested, items upserted, model version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("foryou_request_seconds", "request latency by route", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter("foryou_requests", "requests by route and status", ["method", "route", "status"],
                                registry=self.registry)
        self.fallbacks = Counter("foryou_fallbacks", "recommendations answered by a fallback strategy",
                                 ["fallback"], registry=self.registry)
        self.events = Counter("foryou_events_ingested", "live events newly stored", registry=self.registry)
        self.items = Counter("foryou_items_upserted", "items created or updated live", registry=self.registry)
        self.model = Gauge("foryou_model_info", "the bundle being served (1) by at least one live worker",
                           ["model_version"], registry=self.registry, multiprocess_mode="livemax")
        self._served: str | None = None

    def serving(self, model_version: str) -> None:
        """Mark `model_version` as the one served (the previous one drops to 0)."""
        if self._served is not None and self._served != model_version:
            self.model.labels(model_version=self._served).set(0)  # what multiprocess files keep
            self.model.remove(self._served)
        self.model.labels(model_version=model_version).set(1)
        self._served = model_version

    def exposition(self) -> bytes:
        """The text format of every worker's metrics (multiprocess mode) or of this app's registry."""
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def worker_exited(pid: int) -> None:
    """Drop a stopped worker's live gauges (its counters keep counting in the totals)."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)

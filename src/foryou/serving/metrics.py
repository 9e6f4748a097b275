"""Prometheus metrics of one service process (prometheus-client), in a registry of its own per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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
        self.model = Gauge("foryou_model_info", "the bundle being served (value 1)", ["model_version"],
                           registry=self.registry)

    def serving(self, model_version: str) -> None:
        """Mark `model_version` as the one served (the previous one drops out)."""
        self.model.clear()
        self.model.labels(model_version=model_version).set(1)

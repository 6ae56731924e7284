"""Prometheus metrics of the service (``GET /metrics``), in a registry of its own so apps never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """Requests, inputs, tokens (and padded tokens), batch sizes, queue depth and latency, by side."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "leaf_serve_requests", "Requests by protocol, side, HTTP status", ["protocol", "side", "status"],
            registry=r,
        )  # fmt: skip
        self.inputs = Counter("leaf_serve_inputs", "Texts embedded", ["side"], registry=r)
        self.tokens = Counter("leaf_serve_tokens", "Tokens embedded (truncated, prompt included)", ["side"], registry=r)
        self.batch_size = Histogram(
            "leaf_serve_batch_size", "Texts per model batch", ["side"], buckets=BATCH_BUCKETS, registry=r
        )
        self.padded_tokens = Counter(
            "leaf_serve_padded_tokens", "Tokens the model ran, padding included (batch width x texts)", ["side"],
            registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("leaf_serve_queue_depth", "Texts waiting for a model batch", ["side"], registry=r)
        self.latency = Histogram(
            "leaf_serve_request_seconds", "Request latency (body read to response)", ["side"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.rejected = Counter("leaf_serve_rejected", "Requests refused for load", ["side", "reason"], registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

"""Prometheus metrics: request latency by route, query latency by stage, index size (served at ``/metrics``
by ``web.routes.metrics``).

Each app gets its own registry, so several apps in one process (the tests)
do not collide. Under gunicorn with several workers, set
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums over all of them.
"""

import os
import time
from contextlib import contextmanager

from flask import g, request
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Text encoding on a CPU takes 5-50 ms, an image up to a few hundred; the
# buckets resolve both ends.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The method label takes these values and "other": any token is a valid method, and each one
# a client makes up would otherwise add a series to /metrics for good.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "photosearch_http_request_duration_seconds", "HTTP request latency by route",
            ("endpoint", "method", "status"), registry=self.registry, buckets=BUCKETS)
        self.stages = Histogram(
            "photosearch_query_stage_duration_seconds",
            "Latency of one stage of a query: fetch (image_url), embed (query vector), search, deduplicate",
            ("stage", "kind"), registry=self.registry, buckets=BUCKETS)
        self.images = Gauge("photosearch_index_images", "Images in the served index", registry=self.registry,
                            multiprocess_mode="max")

    @contextmanager
    def stage(self, stage, kind):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages.labels(stage, kind).observe(time.perf_counter() - start)

    def exposition(self):
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def init_app(app, metrics):
    app.extensions["metrics"] = metrics

    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def observe(response):
        started = g.pop("request_started", None)
        if started is not None:
            # The endpoint name, not the path, so ids do not explode the label set.
            endpoint = request.endpoint or "unmatched"
            method = request.method if request.method in METHODS else "other"
            metrics.requests.labels(endpoint, method, str(response.status_code)).observe(
                time.perf_counter() - started)
        return response

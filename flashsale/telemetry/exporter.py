"""``GET /metrics`` on a port of its own, for a process that has no HTTP server."""

from __future__ import annotations

from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from flashsale.settings import ConfigError


class _Default(Collector):
    """The process' default registry: its CPU and memory, and the counters modules keep
    there (``flashsale_payment_alerts_total`` in timers, ``..._delivery_alerts_total``)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()

    def describe(self) -> Iterable[Metric]:
        return []  # names are REGISTRY's to check, not this registry's


def export(port: int | None, host: str, variable: str, *collectors: Collector) -> WSGIServer | None:
    """Serve ``collectors`` (and the process' CPU and memory) at ``http://host:port/metrics``.

    Runs in a daemon thread of prometheus_client, so a busy event loop never
    delays a scrape. ``port`` None: off. A port that cannot be bound is a
    ``ConfigError`` naming ``variable`` (one line and exit 2 from the command).
    Returns the server (``server_address``; ``shutdown()`` stops it), None when off.
    """
    if port is None:
        return None
    registry = CollectorRegistry()
    registry.register(_Default())
    for collector in collectors:
        registry.register(collector)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            variable, f"= {port}: cannot listen on {host}:{port} ({exc.strerror})"
        ) from None
    return server

"""Prometheus metrics of a gateway process, served at /metrics (with the platform's own,
pawhome/platform/metrics.py, on the same registry).

Each gateway process exposes its own; Prometheus scrapes every port (docs/operations.md).
Route labels are route templates (/v1/users/{user_id}), never raw paths, so cardinality stays
bounded.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pawhome.platform.metrics import REGISTRY

HTTP_REQUESTS = Counter("pawhome_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram(
    "pawhome_http_request_duration_seconds", "HTTP request latency", ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0), registry=REGISTRY)
HTTP_ERRORS = Counter("pawhome_http_errors_total", "Error replies by business code", ["code"],
                      registry=REGISTRY)
WEBSOCKETS_OPEN = Gauge("pawhome_websockets_open", "Open WebSocket connections",
                        registry=REGISTRY)
RATE_LIMITED = Counter("pawhome_rate_limited_total", "Requests refused by a rate limit",
                       ["rule"], registry=REGISTRY)
WS_CLOSES = Counter("pawhome_ws_closes_total", "WebSocket closes initiated by the server, by code",
                    ["code"], registry=REGISTRY)
WS_REBALANCED = Counter("pawhome_ws_rebalanced_total",
                        "Sockets closed with 1012 to move them to a less loaded gateway "
                        "(gateway/rebalance.py)", registry=REGISTRY)
WS_REBALANCE_CHECKS = Counter("pawhome_ws_rebalance_checks_total",
                              "Rebalancing checks run (one per WS_REBALANCE_INTERVAL_SECONDS)",
                              registry=REGISTRY)
WS_FRAMES_IN = Counter("pawhome_ws_frames_in_total", "Client frames by type", ["type"],
                       registry=REGISTRY)
WS_EVENTS = Counter("pawhome_ws_events_total", "Events written to sockets, by kind",
                    ["kind"], registry=REGISTRY)
WS_REJECTED = Counter("pawhome_ws_rejected_total", "Upgrades refused before the handshake",
                      ["status"], registry=REGISTRY)
HUB_CHANNELS = Gauge("pawhome_hub_channels", "Pub/sub channels this process subscribes to",
                     registry=REGISTRY)
HUB_RECONNECTS = Counter("pawhome_hub_reconnects_total", "Pub/sub reconnections",
                         registry=REGISTRY)

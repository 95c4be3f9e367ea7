"""The process's Prometheus registry, and the metrics of the platform itself.

Every metric of a process is registered here (the gateway adds its own in gateway/metrics.py)
and served by the gateway at /metrics. Route labels are route templates, never raw paths, so
cardinality stays bounded. A gauge read from the database or Redis is set when scraped: its
domain registers a function with `on_scrape` (the gateway runs them all before it answers,
each within SCRAPE_TIMEOUT; one that fails keeps its gauges' last values).
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

TASKS_ENQUEUED = Counter("pawhome_tasks_enqueued_total", "Tasks handed to the broker",
                         ["task"], registry=REGISTRY)
OUTBOX_PENDING = Gauge("pawhome_outbox_pending", "Outbox rows waiting for the relay",
                       registry=REGISTRY)

SCRAPE_TIMEOUT = 2.0
_scrape_hooks: list[Callable[[Any], Awaitable[None]]] = []


def on_scrape(hook: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """Register `hook(resources)` to set gauges before each scrape (a decorator)."""
    if hook not in _scrape_hooks:
        _scrape_hooks.append(hook)
    return hook


async def run_scrape_hooks(resources: Any) -> None:
    for hook in tuple(_scrape_hooks):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(hook(resources), SCRAPE_TIMEOUT)

"""The process's Prometheus registry, and the metrics of the platform itself.

Every metric of a process is registered here (the gateway adds its own in gateway/metrics.py)
and served by the gateway at /metrics. Route labels are route templates, never raw paths, so
cardinality stays bounded.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

TASKS_ENQUEUED = Counter("pawhome_tasks_enqueued_total", "Tasks handed to the broker",
                         ["task"], registry=REGISTRY)
OUTBOX_PENDING = Gauge("pawhome_outbox_pending", "Outbox rows waiting for the relay",
                       registry=REGISTRY)

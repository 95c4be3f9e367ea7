"""Tasks of the default queue."""
from __future__ import annotations

from workers.celery_app import celery_app


@celery_app.task(name="default.ping")
def ping(value: str = "pong") -> str:
    """A no-op task used by health checks and tests to prove the worker round trip."""
    return value

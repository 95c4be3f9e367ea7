"""The base class of every PAWHome task: idempotent, late-acked, retried, dead-lettered.

Tasks are written to be idempotent, so acks_late (ack after the task ran) and
reject_on_worker_lost (a killed worker's task goes back to the queue) are safe. Transient
errors (a database, Redis or HTTP outage) are retried with exponential backoff and jitter, up
to TASK_MAX_RETRIES; a task that still fails, or fails with a non-transient error, is recorded
in the dead_letters table for admins (GET /v1/admin/dead-letters).
"""
from __future__ import annotations

import logging
from typing import Any

import httpx
import redis.exceptions as redis_errors
from celery import Task
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.exc import OperationalError as DbOperationalError

from pawhome.platform.deadletters import record_dead_letter
from pawhome.platform.errors import ServiceUnavailable
from workers import runtime

log = logging.getLogger("pawhome.tasks")


class TransientError(Exception):
    """Raise from a task for a failure worth retrying that no library error describes."""


# Failures that say "try again later", not "this can never work".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    ServiceUnavailable,  # DatabaseUnavailable, CacheUnavailable, WeChatUnavailable, ...
    DbOperationalError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    httpx.TransportError,  # connect/read timeouts, refused connections
    BrokerOperationalError,
    ConnectionError,
    TimeoutError,
)


# Options for beat-driven jobs: no retries and no dead letter, the next tick runs them again.
PERIODIC = {"autoretry_for": (), "dead_letter": False, "max_retries": 0}


class PawTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT_ERRORS
    retry_jitter = True
    # Periodic jobs set this False: the next beat tick is their retry, a letter is only noise.
    dead_letter = True
    # max_retries, retry_backoff and retry_backoff_max come from settings (celery_app.py).

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        """The task failed for good: keep its arguments and error for admins to retry."""
        retries = int(getattr(self.request, "retries", 0) or 0)
        error = f"{type(exc).__name__}: {exc}"
        log.error("task %s[%s] failed after %s retries: %s", self.name, task_id, retries,
                  error[:300])
        if not self.dead_letter:
            return

        async def record() -> None:
            async with runtime.resources().db.session() as session, session.begin():
                await record_dead_letter(
                    session, task_id=task_id, task_name=self.name, args=list(args or ()),
                    kwargs=dict(kwargs or {}), error=error,
                    traceback=str(getattr(einfo, "traceback", "") or ""), retries=retries)

        try:
            runtime.run(record())
        except Exception:  # the database may be the reason the task failed
            log.exception("could not record dead letter for %s[%s]", self.name, task_id)

"""The one Celery application: broker, queues, routing, serialisation, limits, beat schedule.

Queues by workload (default, media, ai, moderation, search, notify), each optionally prefixed
by TASK_QUEUE_PREFIX so several environments (or test runs) share a broker safely. Routing is
by task-name prefix: `media.*` goes to the media queue, and so on. JSON only.
"""
from __future__ import annotations

from celery import Celery
from kombu import Queue

from settings import Settings, get_settings

QUEUE_NAMES = ("default", "media", "ai", "moderation", "search", "notify")

# Task modules, one per queue; importing them registers their tasks.
TASK_MODULES = ["workers.default"]


def queue_name(settings: Settings, queue: str) -> str:
    return f"{settings.task_queue_prefix}{queue}"


def route_for(task_name: str) -> str:
    """Queue of a task: its name's first segment if that is a queue, else default."""
    head = task_name.split(".", 1)[0]
    return head if head in QUEUE_NAMES else "default"


def make_celery(settings: Settings) -> Celery:
    broker = settings.broker_url or "memory://"
    app = Celery("pawhome", broker=broker, backend=settings.result_backend_url or None,
                 include=TASK_MODULES)
    transport_options = {}
    if broker.startswith(("redis://", "rediss://")):
        transport_options["global_keyprefix"] = settings.redis_prefix + "celery:"
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        task_default_queue=queue_name(settings, "default"),
        task_queues=[Queue(queue_name(settings, q)) for q in QUEUE_NAMES],
        task_routes=lambda name, *a, **k: {"queue": queue_name(settings, route_for(name))},
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        enable_utc=True,
        timezone="Asia/Shanghai",
    )
    return app


celery_app = make_celery(get_settings())

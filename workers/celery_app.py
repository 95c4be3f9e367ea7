"""The one Celery application: broker, queues, routing, serialisation, limits, beat schedule.

Queues by workload (default, media, moderation, search, notify, payments, ai), each with its one
task module named after it (workers/<queue>.py; `ai` is the virtual pet's generation), each
optionally prefixed by TASK_QUEUE_PREFIX so several environments (or test runs) share a broker
safely. Routing is by task-name prefix: `media.*` goes to the media queue, and so on. JSON
only. Broker and result backend are settings: Redis by default, RabbitMQ by changing
BROKER_URL alone.

This module is the workers' composition root: it imports every domain module
(pawhome.domains) and every task module, and installs the Celery task dispatcher that the
outbox uses (pawhome/platform/tasks.py).
"""
from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from celery import Celery, signals
from kombu import Exchange, Queue

import pawhome.domains  # noqa: F401  (every domain's registrations, as in the gateway)
from pawhome.platform import outbox, tasks
from pawhome.platform.logs import setup_logging
from settings import Settings, get_settings
from workers import activities, ai, default, media, moderation, notify, payments, runtime, search  # noqa: F401  (their tasks)
from workers.base import PawTask
from workers.dispatch import CeleryDispatcher
from workers.schedule import beat_schedule

QUEUE_NAMES = ("default", "media", "moderation", "search", "notify",
               "payments", "ai")

# The task module of each queue (imported above; a worker's `include` names them again), and
# the domains' own modules whose tasks run on the default queue.
TASK_MODULES = [f"workers.{queue}" for queue in QUEUE_NAMES] + ["workers.activities"]


def queue_name(settings: Settings, queue: str) -> str:
    return f"{settings.task_queue_prefix}{queue}"


def route_for(task_name: str) -> str:
    """Queue of a task: its name's first segment if that is a queue, else default."""
    head = task_name.split(".", 1)[0]
    return head if head in QUEUE_NAMES else "default"


def _queue(name: str) -> Queue:
    # Each queue gets its own exchange and routing key. Left unset, Celery binds every queue
    # to the default exchange with the default key, so one message lands in all of them.
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def task_modules(settings: Settings) -> list[str]:
    extra = [m.strip() for m in settings.task_extra_modules.split(",") if m.strip()]
    return TASK_MODULES + extra


def make_celery(settings: Settings) -> Celery:
    broker = settings.broker_url or "memory://"
    # Task defaults that depend on settings live on a per-app subclass of the base task.
    task_cls = type("PawTask", (PawTask,), {
        "max_retries": settings.task_max_retries,
        "retry_backoff": settings.task_retry_backoff,
        "retry_backoff_max": settings.task_retry_backoff_max,
        "__module__": PawTask.__module__,
    })
    app = Celery("pawhome", broker=broker, backend=settings.result_backend_url or None,
                 include=task_modules(settings), task_cls=task_cls)
    # A publisher (the outbox relay, a retry) fails fast when the broker is away; the outbox
    # keeps the work. Workers reconnect on their own (broker_connection_retry).
    transport_options: dict[str, Any] = {"max_retries": 2, "interval_start": 0,
                                         "interval_step": 0.5, "interval_max": 1}
    if broker.startswith(("redis://", "rediss://")):
        transport_options["global_keyprefix"] = settings.redis_prefix + "celery:"
        transport_options["visibility_timeout"] = settings.broker_visibility_timeout
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=not settings.result_backend_url,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        task_default_queue=queue_name(settings, "default"),
        task_queues=[_queue(queue_name(settings, q)) for q in QUEUE_NAMES],
        task_routes=lambda name, *a, **k: {"queue": queue_name(settings, route_for(name))},
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=settings.beat_schedule_file,
        enable_utc=True,
        timezone="Asia/Shanghai",
    )
    return app


celery_app = make_celery(get_settings())

_apps: dict[tuple[str, str, str], Celery] = {}


def _app_key(settings: Settings) -> tuple[str, str, str]:
    return (settings.broker_url, settings.task_queue_prefix, settings.redis_prefix)
_apps_lock = threading.Lock()


def app_for(settings: Settings) -> Celery:
    """The Celery app for these settings: the module's app unless the broker differs."""
    wanted = _app_key(settings)
    if wanted == _app_key(get_settings()):
        return celery_app
    with _apps_lock:
        if wanted not in _apps:
            _apps[wanted] = make_celery(settings)
        return _apps[wanted]


tasks.install(CeleryDispatcher(celery_app, app_for))


@signals.setup_logging.connect
def _use_pawhome_logging(**_: object) -> None:
    """Worker and beat log JSON lines like the gateway (pawhome/platform/logs.py)."""
    setup_logging(get_settings().log_level)


@signals.task_postrun.connect
def _relay_what_the_task_committed(**_: object) -> None:
    """Hand the outbox rows a task committed to the broker/streams now (a worker runs no relay
    loop; without this they would wait for a gateway's next poll). Failures are left to the
    gateways' relays and the beat safety net."""
    settings = get_settings()
    if not settings.broker_url or not outbox.take_committed_rows_flag():
        return  # embedded mode: the gateway's own relay was woken by the commit
    try:
        relay = outbox.OutboxRelay(runtime.resources())
        for _pass in range(10):  # bounded: a busy outbox is the relays' job, not this task's
            if not runtime.run(relay.relay_once()):
                break
    except Exception as error:
        logging.getLogger("pawhome.platform.outbox").warning("post-task relay failed: %r", error)


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _close_runtime(**_: object) -> None:
    runtime.close()


def _import_extra_task_modules() -> None:
    """TASK_EXTRA_MODULES (the test suite's own tasks) are known by name only: register them
    in any process that imports the app, not only in workers."""
    for module in task_modules(get_settings())[len(TASK_MODULES):]:
        importlib.import_module(module)


_import_extra_task_modules()


"""The Celery side of the task-dispatch interface (pawhome/platform/tasks.py).

`CeleryDispatcher` publishes outbox tasks to the broker with the Celery app of the settings
in hand (routing by task name, celery_app.task_routes), runs them in-process in embedded mode,
and checks the broker for /readyz. workers/celery_app.py installs it as the process default
when the app is built, so every process that imports the app — a worker, a gateway, the test
harness — dispatches through it.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import Celery

from settings import Settings

log = logging.getLogger("pawhome.outbox")


class CeleryDispatcher:
    def __init__(self, app: Celery, app_for: Any) -> None:
        self.app = app  # the module's app: its tasks are registered, in-process runs use it
        self.app_for = app_for  # Settings -> the app for that broker and queue prefix

    def send(self, settings: Settings, name: str, args: list[Any],
             kwargs: dict[str, Any]) -> None:
        self.app_for(settings).send_task(name, args=args, kwargs=kwargs, retry=False)

    def run(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        result = self.app.tasks[name].apply(args=args, kwargs=kwargs)
        if result.failed():
            log.warning("in-process task %s failed: %r", name, result.result)

    def check_broker(self, settings: Settings) -> None:
        with self.app_for(settings).connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    def queue_lengths(self, settings: Settings) -> dict[str, int]:
        """Messages waiting in each queue of the broker named by `settings` (the statistics
        overview, the console's dashboard); {} with no broker (embedded mode runs tasks
        in-process)."""
        if not settings.broker_url:
            return {}
        app = self.app_for(settings)
        prefix = settings.task_queue_prefix
        lengths: dict[str, int] = {}
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            for queue in app.conf.task_queues or ():
                name = queue.name[len(prefix):] if queue.name.startswith(prefix) else queue.name
                # A passive declare answers the count without creating the queue; one that
                # does not exist yet (nothing was ever sent to it) holds nothing. Its own
                # channel: a refused passive declare closes the channel on AMQP.
                channel = conn.channel()
                try:
                    lengths[name] = int(channel.queue_declare(queue.name,
                                                              passive=True).message_count)
                except Exception:
                    lengths[name] = 0
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
        return lengths

"""The task-dispatch interface: how the outbox hands a task to whoever runs it.

The outbox (pawhome/platform/outbox.py) is the one way a change enqueues work; it knows task
names and JSON arguments, not Celery. A `TaskDispatcher` does the rest: `send` gives a task to
the broker (a gateway's relay, a worker's post-task relay), `run` runs it in this process
(embedded mode, no broker), `check_broker` raises when the broker is unreachable (/readyz),
`queue_lengths` counts what waits in each queue (the statistics overview).
The Celery app provides the real one (workers/dispatch.py) and the composition roots install
it at start-up (`install`), so the platform never imports `workers`. All four are blocking
calls: the outbox runs them on its thread pool, never on the event loop.
"""
from __future__ import annotations

from typing import Any, Protocol

from settings import Settings


class TaskDispatcher(Protocol):
    def send(self, settings: Settings, name: str, args: list[Any],
             kwargs: dict[str, Any]) -> None:
        """Publish the task to the broker named by `settings` (routing by its name)."""

    def run(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Run the task here and now (embedded mode); a failure is logged, not raised."""

    def check_broker(self, settings: Settings) -> None:
        """Raise if the broker named by `settings` cannot be reached."""

    def queue_lengths(self, settings: Settings) -> dict[str, int]:
        """Messages waiting in each task queue of the broker named by `settings`, by queue
        name without the prefix (the statistics overview, the console's dashboard); {}
        without a broker."""


class NoDispatcher:
    """What a process has before a composition root installs the real dispatcher: any task it
    is asked to hand over stays in the outbox (the relay postpones the row and retries)."""

    def _refuse(self) -> None:
        raise RuntimeError("no task dispatcher installed: the process's composition root "
                           "must call pawhome.platform.tasks.install()")

    def send(self, settings: Settings, name: str, args: list[Any],
             kwargs: dict[str, Any]) -> None:
        self._refuse()

    def run(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        self._refuse()

    def check_broker(self, settings: Settings) -> None:
        self._refuse()

    def queue_lengths(self, settings: Settings) -> dict[str, int]:
        self._refuse()
        return {}


_installed: TaskDispatcher = NoDispatcher()


def install(dispatcher: TaskDispatcher) -> None:
    """Make `dispatcher` this process's default (each Resources may also be given its own)."""
    global _installed
    _installed = dispatcher


def installed() -> TaskDispatcher:
    return _installed

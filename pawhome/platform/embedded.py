"""Embedded mode (`make run`): the whole product in one process, nothing to install but Python.

Three URLs make it embedded: DATABASE_URL is a SQLite file under var/ (WAL journal),
REDIS_URL=memory:// is an in-process Redis-compatible store (fakeredis, Lua included), and an
empty BROKER_URL makes the outbox relay run tasks in-process on its thread pool, off the event
loop (pawhome/platform/outbox.py). Set any of them to a real service and that part becomes real.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from sqlalchemy.engine import make_url

from pawhome.platform import migrate, outbox
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.embedded")


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases or an in-memory SQLite)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def describe(settings: Settings) -> dict[str, str]:
    """Where this process keeps its data and runs its tasks, for the start-up banner."""
    path = sqlite_path(settings.database_url)
    return {
        "database": f"SQLite {path}" if path else make_url(settings.database_url)
        .render_as_string(hide_password=True),
        "redis": "in-process store (fakeredis)" if settings.redis_url.startswith("memory://")
        else make_url(settings.redis_url).render_as_string(hide_password=True),
        "tasks": "in-process, on the outbox relay's threads" if not settings.broker_url
        else "sent to the broker: run workers separately (make worker)",
    }


async def prepare_embedded(resources: Resources) -> None:
    """Migrate the database to head before serving, so `python run_gateway.py` alone works."""
    settings = resources.settings
    path = sqlite_path(settings.database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # Alembic logs every plugin and step at INFO (from import on): not news at each start.
    logging.getLogger("alembic").setLevel(logging.WARNING)

    await asyncio.get_running_loop().run_in_executor(None, migrate.upgrade,
                                                     settings.database_url)


class EmbeddedBeat:
    """Embedded mode runs no Celery beat, so the gateway plays its part: every interval job
    of the beat schedule (`jobs`: task name → seconds) is queued through the outbox at its
    interval, and the relay runs it on its threads like any other task. Reminders go out,
    expired holds free their slots, overdue sweeps catch up, as they would in production.
    Crontab jobs (nightly upkeep) are left to a real beat."""

    def __init__(self, resources: Resources, jobs: dict[str, float]) -> None:
        self.resources = resources
        self.jobs = {name: max(1.0, float(seconds)) for name, seconds in jobs.items()}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.jobs and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = {name: loop.time() + seconds for name, seconds in self.jobs.items()}
        while True:
            now = loop.time()
            ready = sorted(name for name, at in due.items() if at <= now)
            if ready:
                try:
                    async with self.resources.db.session() as session, session.begin():
                        for name in ready:
                            outbox.enqueue_task(session, name)
                except Exception:  # the database is busy or gone: the next tick tries again
                    log.exception("embedded beat could not queue %s", ready)
                for name in ready:
                    due[name] = now + self.jobs[name]
            await asyncio.sleep(max(0.05, min(due.values()) - loop.time()))

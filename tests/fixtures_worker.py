"""Fixtures that run a real Celery worker for task tests, and the tasks tests send it.

`celery_worker_process` (session scope) starts `run_worker.py` on every queue with the test
environment (the run's database, Redis prefix, broker and queue prefix) plus
TASK_EXTRA_MODULES=tests.fixtures_worker, so the tasks below exist in the worker. It waits
until a probe task has round-tripped and stops the worker (and its children) at the end.
`start_worker(...)` starts another worker against other settings (RabbitMQ, a private Redis).
Tests wait on outcomes with `wait_until` (a deadline, never a fixed sleep).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from workers import runtime
from workers.base import TransientError
from workers.celery_app import QUEUE_NAMES, celery_app

ROOT = Path(__file__).resolve().parent.parent

# Retries in the test worker: 2, with 1 s backoff base, so exhausting them takes ~3 s.
WORKER_TEST_ENV = {
    # tests.payments_support: the payable type the payments tests pay for (its hooks run in
    # the worker too).
    "TASK_EXTRA_MODULES": "tests.fixtures_worker,tests.payments_support",
    "TASK_MAX_RETRIES": "2",
    "TASK_RETRY_BACKOFF": "1",
    "TASK_RETRY_BACKOFF_MAX": "2",
    "LOG_LEVEL": "INFO",
}


# -- tasks the test worker runs ----------------------------------------------------------------
def probe_key(redis_prefix: str, probe_id: str) -> str:
    return f"{redis_prefix}probe:{probe_id}"


async def _record_run(probe_id: str, task_id: str) -> int:
    cache = runtime.resources().cache
    key = cache.key("probe", probe_id)
    runs = await cache.redis.hincrby(key, "runs", 1)
    # The effect happens once however often the task runs (the idempotency pattern).
    await cache.redis.hsetnx(key, "done_by", task_id)
    await cache.redis.expire(key, 3600)
    return int(runs)


@celery_app.task(name="tests.record_run", bind=True)
def record_run(self, probe_id: str) -> int:
    return runtime.run(_record_run(probe_id, self.request.id or "-"))


@celery_app.task(name="tests.fail_transiently", bind=True)
def fail_transiently(self, probe_id: str, times: int) -> int:
    """Fails with a transient error on its first `times` runs, then records success."""
    cache = runtime.resources().cache
    runs = runtime.run(cache.redis.hincrby(cache.key("probe", probe_id), "attempts", 1))
    if runs <= times:
        raise TransientError(f"attempt {runs} of {probe_id} failed on purpose")
    return runtime.run(_record_run(probe_id, self.request.id or "-"))


@celery_app.task(name="tests.fail_permanently")
def fail_permanently(probe_id: str, reason: str = "bad input") -> None:
    raise ValueError(f"{reason} ({probe_id})")


# -- waiting -------------------------------------------------------------------------------------
async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 20,
                     interval: float = 0.1, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def probe_state(cache, probe_id: str) -> dict[str, str]:
    raw = await cache.redis.hgetall(cache.key("probe", probe_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


# -- worker processes ----------------------------------------------------------------------------
class WorkerProcess:
    """A `run_worker.py` subprocess in its own process group."""

    def __init__(self, env: dict[str, str], queues: str, concurrency: int) -> None:
        self.env = {**os.environ, **WORKER_TEST_ENV, **env}
        self.log = tempfile.NamedTemporaryFile(prefix="pawhome-worker-", suffix=".log",
                                               delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run_worker.py"), "--queues", queues,
             "--concurrency", str(concurrency), "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def log_tail(self, chars: int = 3000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-chars:]

    def wait_ready(self, send_probe: Callable[[str], None], redis_url: str,
                   redis_prefix: str, timeout: float = 40) -> None:
        """Round-trip a probe task: the worker is ready once it has run it."""
        import redis

        client = redis.Redis.from_url(redis_url)
        probe_id = "ready-" + uuid.uuid4().hex
        send_probe(probe_id)
        deadline = time.monotonic() + timeout
        try:
            while not client.hget(probe_key(redis_prefix, probe_id), "runs"):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_tail()  # stop() removes the log
                    self.stop()
                    raise RuntimeError("worker did not become ready:\n" + tail)
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stray prefork children, if any
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.log.close()
        if os.path.exists(self.log.name):
            os.unlink(self.log.name)


def start_worker(env: dict[str, str] | None = None, queues: str = "default,notify",
                 concurrency: int = 1, settings=None) -> WorkerProcess:
    """Start a worker with `env` over the test environment; returns once it is ready."""
    from settings import Settings
    from workers.celery_app import app_for

    env = env or {}
    worker = WorkerProcess(env, queues, concurrency)
    settings = settings or Settings(**{k.lower(): v for k, v in env.items()
                                       if k.lower() in Settings.model_fields})
    app = app_for(settings)
    worker.wait_ready(lambda probe: app.send_task("tests.record_run", args=[probe]),
                      settings.redis_url, settings.redis_prefix)
    return worker


@pytest.fixture(scope="session")
def celery_worker_process():
    """A real worker on every queue, shared by the whole run."""
    worker = start_worker(queues=",".join(QUEUE_NAMES), concurrency=2)
    yield worker
    worker.stop()

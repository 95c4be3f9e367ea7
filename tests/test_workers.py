"""The worker fleet against a real Celery worker: routing, retries, dead letters, housekeeping."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.platform import DeadLetter, IdempotencyRecord, OutboxMessage
from models.users import RefreshToken, User
from pawhome.platform.outbox import enqueue_task
from tests.fixtures_worker import ROOT, WORKER_TEST_ENV, probe_state, wait_until
from workers.celery_app import QUEUE_NAMES, celery_app, route_for
from workers.schedule import beat_schedule


def test_each_queue_has_its_own_exchange_and_routing_key():
    queues = {q.name: q for q in celery_app.conf.task_queues}
    assert len(queues) == len(QUEUE_NAMES)
    assert len({q.exchange.name for q in queues.values()}) == len(QUEUE_NAMES)
    assert all(q.routing_key == q.name for q in queues.values())


def test_tasks_route_by_name_prefix_and_unknown_prefixes_go_to_default():
    assert route_for("media.transcode_video") == "media"
    assert route_for("notify.push_to_user") == "notify"
    assert route_for("tests.record_run") == "default"
    assert route_for("mediaX.thing") == "default"
    prefix = os.environ["TASK_QUEUE_PREFIX"]
    route = celery_app.amqp.router.route({}, "search.index_post")
    assert route["queue"].name == prefix + "search"


def test_only_json_is_accepted():
    assert celery_app.conf.accept_content == ["json"]
    assert celery_app.conf.task_serializer == "json"


def test_tasks_are_late_acked_retried_with_backoff_and_time_limited():
    task = celery_app.tasks["notify.push_to_user"]
    assert task.acks_late and task.reject_on_worker_lost
    assert task.retry_backoff and task.retry_jitter and task.max_retries >= 1
    assert celery_app.conf.task_soft_time_limit < celery_app.conf.task_time_limit


def test_beat_schedule_names_registered_tasks_only():
    from settings import Settings

    schedule = beat_schedule(Settings())
    assert {"relay-outbox", "refresh-wechat-token", "purge-expired-idempotency-records",
            "purge-expired-refresh-tokens", "purge-resolved-dead-letters"} <= set(schedule)
    for entry in schedule.values():
        assert entry["task"] in celery_app.tasks, entry["task"]
    # Periodic jobs never dead-letter: the next tick is their retry.
    assert not celery_app.tasks["default.relay_outbox"].dead_letter


@pytest.mark.gen_test(timeout=60)
async def test_committed_task_runs_on_the_real_worker(celery_worker_process, resources, app):
    probe = uuid.uuid4().hex
    async with resources.db.session() as session, session.begin():
        enqueue_task(session, "tests.record_run", probe)
    state = await wait_until(lambda: probe_state(resources.cache, probe), what="task run")
    assert state["runs"] == "1"


@pytest.mark.gen_test(timeout=60)
async def test_transient_failure_is_retried_then_succeeds(celery_worker_process, resources, app):
    probe = uuid.uuid4().hex
    async with resources.db.session() as session, session.begin():
        enqueue_task(session, "tests.fail_transiently", probe, 1)
    state = await wait_until(
        lambda: _when(probe_state(resources.cache, probe), lambda s: "runs" in s),
        timeout=30, what="retry to succeed")
    assert state["attempts"] == "2" and state["runs"] == "1"
    async with resources.db.session() as session:
        letters = (await session.execute(
            select(DeadLetter).where(DeadLetter.task_name == "tests.fail_transiently"))
        ).scalars().all()
    assert not any(probe in (d.args or []) for d in letters)


async def _when(coro, predicate):
    value = await coro
    return value if predicate(value) else None


async def _dead_letter_for(resources, probe: str) -> DeadLetter | None:
    async with resources.db.session() as session:
        letters = (await session.execute(select(DeadLetter))).scalars().all()
    return next((d for d in letters if probe in (d.args or [])), None)


@pytest.mark.gen_test(timeout=90)
async def test_task_that_exhausts_retries_is_dead_lettered_and_an_admin_retry_runs_it(
        celery_worker_process, resources, api):
    probe = uuid.uuid4().hex
    max_retries = int(WORKER_TEST_ENV["TASK_MAX_RETRIES"])
    async with resources.db.session() as session, session.begin():
        # Fails on the first max_retries + 1 runs: every retry is used up.
        enqueue_task(session, "tests.fail_transiently", probe, max_retries + 1)
    letter = await wait_until(lambda: _dead_letter_for(resources, probe), timeout=40,
                              what="dead letter")
    assert letter.task_name == "tests.fail_transiently"
    assert letter.args == [probe, max_retries + 1] and letter.kwargs == {}
    assert letter.retries == max_retries
    assert "TransientError" in letter.error and "failed on purpose" in letter.traceback
    assert letter.resolved_at is None
    state = await probe_state(resources.cache, probe)
    assert state["attempts"] == str(max_retries + 1) and "runs" not in state

    admin = await api.login(role="admin")
    page = (await api.get("/v1/admin/dead-letters?limit=100", token=admin.token)).ok()
    assert any(item["id"] == letter.id for item in page["items"])

    retried = (await api.post(f"/v1/admin/dead-letters/{letter.id}/retry",
                              token=admin.token)).ok()
    assert retried["resolved_at"] is not None
    state = await wait_until(
        lambda: _when(probe_state(resources.cache, probe), lambda s: "runs" in s),
        timeout=30, what="retried task to run")
    assert state["runs"] == "1"
    # A second retry of the same letter is refused: the task is enqueued once.
    (await api.post(f"/v1/admin/dead-letters/{letter.id}/retry",
                    token=admin.token)).error(409, code=40900)


@pytest.mark.gen_test(timeout=60)
async def test_permanent_error_is_dead_lettered_without_retries(celery_worker_process,
                                                                resources, app):
    probe = uuid.uuid4().hex
    async with resources.db.session() as session, session.begin():
        enqueue_task(session, "tests.fail_permanently", probe, reason="no such pet")
    letter = await wait_until(lambda: _dead_letter_for(resources, probe), timeout=30,
                              what="dead letter")
    assert letter.retries == 0
    assert letter.error.startswith("ValueError: no such pet")
    assert letter.kwargs == {"reason": "no such pet"}


@pytest.mark.gen_test(timeout=60)
async def test_housekeeping_jobs_delete_only_what_has_expired(celery_worker_process, resources):
    now = utcnow()
    async with resources.db.session() as session, session.begin():
        user = User(openid="hk-" + uuid.uuid4().hex[:20])
        session.add(user)
        await session.flush()
        expired_record = IdempotencyRecord(user_id=user.id, key="old-" + uuid.uuid4().hex,
                                           request_hash="x", expires_at=now - dt.timedelta(hours=1))
        live_record = IdempotencyRecord(user_id=user.id, key="new-" + uuid.uuid4().hex,
                                        request_hash="x", expires_at=now + dt.timedelta(hours=1))
        family = str(uuid.uuid4())
        expired_token = RefreshToken(user_id=user.id, family_id=family,
                                     token_hash=uuid.uuid4().hex * 2,
                                     expires_at=now - dt.timedelta(days=1))
        # Used but not expired: kept, because presenting it again must revoke the family.
        used_token = RefreshToken(user_id=user.id, family_id=family,
                                  token_hash=uuid.uuid4().hex * 2, used_at=now,
                                  expires_at=now + dt.timedelta(days=1))
        old_letter = DeadLetter(task_id=uuid.uuid4().hex, task_name="tests.old", args=[],
                                kwargs={}, error="e", traceback="", retries=0,
                                resolved_at=now - dt.timedelta(days=400))
        open_letter = DeadLetter(task_id=uuid.uuid4().hex, task_name="tests.open", args=[],
                                 kwargs={}, error="e", traceback="", retries=0,
                                 failed_at=now - dt.timedelta(days=400))
        session.add_all([expired_record, live_record, expired_token, used_token, old_letter,
                         open_letter])
    for name in ("default.purge_expired_idempotency_records",
                 "default.purge_expired_refresh_tokens", "default.purge_resolved_dead_letters"):
        celery_app.send_task(name)

    async def expired_rows_gone():
        async with resources.db.session() as session:
            gone = [await session.get(IdempotencyRecord, expired_record.id),
                    await session.get(RefreshToken, expired_token.id),
                    await session.get(DeadLetter, old_letter.id)]
        return all(row is None for row in gone)

    await wait_until(expired_rows_gone, timeout=30, what="expired rows to be purged")
    async with resources.db.session() as session:
        assert await session.get(IdempotencyRecord, live_record.id) is not None
        assert await session.get(RefreshToken, used_token.id) is not None
        assert await session.get(DeadLetter, open_letter.id) is not None


@pytest.mark.gen_test(timeout=90)
async def test_beat_relays_the_outbox_when_no_gateway_is_running(celery_worker_process,
                                                                 resources):
    """No relay runs in this test's process: only beat's relay_outbox job can move the row."""
    probe = uuid.uuid4().hex
    async with resources.db.session() as session, session.begin():
        row = enqueue_task(session, "tests.record_run", probe)
    schedule_dir = tempfile.mkdtemp(prefix="pawhome-beat-")
    env = {**os.environ, **WORKER_TEST_ENV, "OUTBOX_RELAY_BEAT_SECONDS": "1",
           "BEAT_SCHEDULE_FILE": os.path.join(schedule_dir, "schedule")}
    beat = subprocess.Popen([sys.executable, str(ROOT / "run_worker.py"), "--beat"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        state = await wait_until(lambda: probe_state(resources.cache, probe), timeout=40,
                                 what="beat to relay the row")
        assert state["runs"] == "1"
        async with resources.db.session() as session:
            assert await session.get(OutboxMessage, row.id) is None
    finally:
        beat.terminate()
        beat.wait(15)
        shutil.rmtree(schedule_dir, ignore_errors=True)


@pytest.mark.gen_test(timeout=60)
async def test_beat_token_refresh_fetches_the_shared_wechat_token_once(
        celery_worker_process, resources, wechat):
    token_key = resources.cache.key("wechat", "access_token")
    for _ in range(3):  # concurrent runs on the worker's two processes: one fetch
        celery_app.send_task("notify.refresh_wechat_token")
    token = await wait_until(lambda: resources.cache.redis.get(token_key), timeout=30,
                             what="shared token in Redis")
    assert token.decode() in wechat.valid_tokens
    assert wechat.stable_token_calls == 1
    assert not any((body or {}).get("force_refresh") for body in wechat.stable_token_bodies)
    # Fresh token: the next tick leaves it alone.
    from pawhome.integrations.wechat import WeChatClient

    assert await WeChatClient(resources).refresh_token_if_due() is False
    assert wechat.stable_token_calls == 1
    assert (await resources.cache.redis.get(token_key)) == token

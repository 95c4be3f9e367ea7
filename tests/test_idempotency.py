"""Idempotency-Key: a replay returns the first response, a changed body is refused, and a
burst of identical submits writes once. Exercised through a test-only write endpoint that
records one row per execution (in dead_letters, a plain table nothing else touches here)."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from gateway import idempotency
from gateway.handler import ApiHandler, endpoint
from gateway.routing import route
from models.base import utcnow
from models.platform import DeadLetter, IdempotencyRecord
from pawhome.platform import errors

PATH = "/v1/test/idempotent-writes"
GATE: dict[str, asyncio.Event] = {}  # marker -> event a request waits on before writing
WRITTEN: dict[str, asyncio.Event] = {}  # marker -> set once a `wait_after` request wrote


class WriteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    marker: str
    amount: int = 1
    wait: bool = False  # before the write
    wait_after: bool = False  # after the write, before the reply


class RecordWriteHandler(ApiHandler):
    """Writes one row per execution; X-Test-Fail makes it fail with that status instead."""

    @endpoint(body=WriteBody, idempotent=True, status=201, summary="test write")
    async def post(self) -> None:
        fail = self.request.headers.get("X-Test-Fail")
        if fail == "503":
            raise errors.DatabaseUnavailable()
        if fail == "409":
            raise errors.Conflict("not enough stock")
        if fail == "500":
            raise RuntimeError("boom")
        if self.body.wait:
            await GATE[self.body.marker].wait()
        async with self.r.db.session() as session, session.begin():
            row = DeadLetter(task_id=self.body.marker, task_name="test.idempotent_write",
                             args=[self.body.amount], kwargs={}, error="", traceback="")
            session.add(row)
        if self.body.wait_after:
            WRITTEN[self.body.marker].set()
            await GATE[self.body.marker].wait()
        self.ok({"row_id": row.id, "amount": self.body.amount}, status=201)


@pytest.fixture
def write_api(api, app):
    app.add_handlers(r".*", [route(PATH, RecordWriteHandler, "test.idempotent_writes").spec()])
    return api


async def rows_written(resources, marker: str) -> int:
    async with resources.db.session() as session:
        return (await session.execute(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.task_id == marker))
        ).scalar_one()


def new_key() -> str:
    return "k-" + uuid.uuid4().hex


def new_marker() -> str:
    return "idem-" + uuid.uuid4().hex[:20]


@pytest.mark.gen_test
async def test_replay_returns_the_first_response_and_writes_nothing_new(write_api, resources):
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    first = await write_api.post(PATH, {"marker": marker, "amount": 5}, token=me.token,
                                 headers={"Idempotency-Key": key})
    assert first.ok(201)["amount"] == 5
    assert "Idempotent-Replayed" not in first.headers
    # Same object, keys in another order and other whitespace: still the same request.
    again = await write_api.post(PATH, body=b'{ "amount": 5,  "marker": "%s" }' % marker.encode(),
                                 token=me.token, headers={"Idempotency-Key": key})
    assert again.status == 201
    assert again.body == first.body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await rows_written(resources, marker) == 1


@pytest.mark.gen_test
async def test_same_key_with_a_different_body_is_422(write_api, resources):
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    (await write_api.post(PATH, {"marker": marker, "amount": 1}, token=me.token,
                          headers={"Idempotency-Key": key})).ok(201)
    reply = await write_api.post(PATH, {"marker": marker, "amount": 1000}, token=me.token,
                                 headers={"Idempotency-Key": key})
    reply.error(422, code=42201, field="Idempotency-Key")
    assert await rows_written(resources, marker) == 1


@pytest.mark.gen_test(timeout=60)
async def test_twenty_concurrent_identical_submits_write_exactly_one_row(write_api, resources):
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    GATE[marker] = asyncio.Event()
    body = {"marker": marker, "amount": 7, "wait": True}
    pending = {asyncio.ensure_future(write_api.post(PATH, body, token=me.token,
                                                    headers={"Idempotency-Key": key}))
               for _ in range(20)}
    answered = []
    # The winner waits at the gate; every other submit must be answered without it.
    while len(answered) < 19:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        answered += [t.result() for t in done]
    GATE[marker].set()
    winner = (await asyncio.gather(*pending))[0]
    assert winner.ok(201)["amount"] == 7
    for reply in answered:
        if reply.status == 409:
            reply.error(409, code=40901)
        else:
            assert reply.body == winner.body and reply.headers["Idempotent-Replayed"] == "true"
    assert await rows_written(resources, marker) == 1
    replay = await write_api.post(PATH, body, token=me.token, headers={"Idempotency-Key": key})
    assert replay.body == winner.body and replay.headers["Idempotent-Replayed"] == "true"


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_submits_without_a_gate_still_write_once(write_api, resources):
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    body = {"marker": marker, "amount": 3}
    replies = await asyncio.gather(*(write_api.post(PATH, body, token=me.token,
                                                    headers={"Idempotency-Key": key})
                                     for _ in range(20)))
    statuses = sorted(r.status for r in replies)
    assert set(statuses) <= {201, 409}, statuses
    first = [r for r in replies if r.status == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(first) == 1
    assert all(r.body == first[0].body for r in replies if r.status == 201)
    assert await rows_written(resources, marker) == 1


@pytest.mark.gen_test
async def test_expired_record_is_replaced_not_replayed(write_api, resources):
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    async with resources.db.session() as session, session.begin():
        session.add(IdempotencyRecord(
            user_id=me.user_id, key=key, request_hash="0" * 64, state="done",
            response_status=201, response_body=b'{"stale": true}',
            expires_at=utcnow() - dt.timedelta(seconds=1)))
    reply = await write_api.post(PATH, {"marker": marker}, token=me.token,
                                 headers={"Idempotency-Key": key})
    assert reply.ok(201)["amount"] == 1
    assert "Idempotent-Replayed" not in reply.headers
    assert await rows_written(resources, marker) == 1
    async with resources.db.session() as session:
        record = (await session.execute(select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == me.user_id, IdempotencyRecord.key == key))).scalar_one()
    assert record.state == "done" and record.response_body == reply.body
    assert record.expires_at > utcnow() + dt.timedelta(
        seconds=resources.settings.idempotency_ttl_seconds - 60)


@pytest.mark.gen_test
async def test_a_503_releases_the_key_so_the_client_can_retry(write_api, resources):
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    body = {"marker": marker}
    failed = await write_api.post(PATH, body, token=me.token,
                                  headers={"Idempotency-Key": key, "X-Test-Fail": "503"})
    failed.error(503, code=50301)
    retried = await write_api.post(PATH, body, token=me.token, headers={"Idempotency-Key": key})
    assert retried.ok(201)
    assert "Idempotent-Replayed" not in retried.headers
    assert await rows_written(resources, marker) == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_503_on_a_busy_pool_releases_the_key_once_a_connection_is_free(write_api,
                                                                               resources):
    """The pool is busy (every connection held): the write waits DB_POOL_TIMEOUT and is
    answered 503, and deleting the pending record fails the same way. The record is deleted
    in the background once a connection is free, so the client's retry runs the write
    instead of getting 409 "in progress" until the record expires (a day)."""
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    GATE[marker] = asyncio.Event()
    body = {"marker": marker, "wait": True}
    first = asyncio.ensure_future(write_api.post(PATH, body, token=me.token,
                                                 headers={"Idempotency-Key": key}))
    await claimed(resources, me.user_id, key)
    size = resources.settings.db_pool_size
    free, all_held, held = asyncio.Event(), asyncio.Event(), []
    holders = [asyncio.ensure_future(hold_a_connection(resources, free, all_held, held, size))
               for _ in range(size)]
    await all_held.wait()
    GATE[marker].set()  # the write now waits for a connection, in vain
    (await first).error(503, code=50301)
    free.set()
    await asyncio.gather(*holders)
    for _ in range(100):  # the release is retried in the background
        if not await claimed(resources, me.user_id, key, wait=False):
            break
        await asyncio.sleep(0.1)
    retried = await write_api.post(PATH, body, token=me.token, headers={"Idempotency-Key": key})
    assert retried.ok(201)  # not 409 "in progress"
    assert "Idempotent-Replayed" not in retried.headers
    assert await rows_written(resources, marker) == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_reply_not_stored_on_a_busy_pool_is_stored_later_and_replayed(write_api,
                                                                              resources, caplog):
    """The write is done, then the pool is busy: storing the reply waits DB_POOL_TIMEOUT
    and fails. The client still gets its reply, the reply is stored in the background once
    a connection is free, and the client's retry with the key gets it again instead of 409
    "in progress" until the record expires (a day), and without running the write again."""
    caplog.set_level(logging.INFO, logger="pawhome.gateway")
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    GATE[marker], WRITTEN[marker] = asyncio.Event(), asyncio.Event()
    body = {"marker": marker, "amount": 4, "wait_after": True}
    first = asyncio.ensure_future(write_api.post(PATH, body, token=me.token,
                                                 headers={"Idempotency-Key": key}))
    await WRITTEN[marker].wait()  # the write committed; the reply waits
    size = resources.settings.db_pool_size
    free, all_held, held = asyncio.Event(), asyncio.Event(), []
    holders = [asyncio.ensure_future(hold_a_connection(resources, free, all_held, held, size))
               for _ in range(size)]
    await all_held.wait()
    GATE[marker].set()  # the reply is now stored in vain, and sent all the same
    answered = await first
    assert answered.ok(201)["amount"] == 4
    assert "could not store the idempotent response" in caplog.text
    free.set()
    await asyncio.gather(*holders)
    for _ in range(100):  # the store is retried in the background
        if await record_state(resources, me.user_id, key) == "done":
            break
        await asyncio.sleep(0.1)
    retried = await write_api.post(PATH, body, token=me.token, headers={"Idempotency-Key": key})
    assert retried.status == 201  # not 409 "in progress"
    assert retried.body == answered.body
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert await rows_written(resources, marker) == 1
    assert "after a failed store" in caplog.text


@pytest.mark.gen_test
async def test_a_background_retry_stops_at_the_first_success_or_gives_up_and_says_so(
        monkeypatch, caplog):
    monkeypatch.setattr(idempotency, "RETRY_DELAYS", (0, 0, 0))
    caplog.set_level(logging.INFO, logger="pawhome.gateway")
    outcomes: list[bool] = []

    def attempts(succeeding_at: int | None):
        async def attempt() -> bool:
            outcomes.append(len(outcomes) + 1 == succeeding_at)
            return outcomes[-1]
        return attempt

    await idempotency._retry_later(attempts(2), "it worked", "gave up on it")
    assert outcomes == [False, True]
    outcomes.clear()
    await idempotency._retry_later(attempts(None), "it worked", "gave up on it")
    assert outcomes == [False, False, False]
    assert [(r.levelname, r.message) for r in caplog.records if r.name == "pawhome.gateway"] \
        == [("INFO", "it worked"), ("ERROR", "gave up on it")]
    assert not idempotency._retrying  # nothing left behind


async def record_state(resources, user_id: int, key: str) -> str | None:
    async with resources.db.session() as session:
        return (await session.execute(select(IdempotencyRecord.state).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key))
        ).scalar_one_or_none()


async def claimed(resources, user_id: int, key: str, wait: bool = True) -> bool:
    """Whether the key's record exists (with `wait`, until it does)."""
    while True:
        async with resources.db.session() as session:
            found = (await session.execute(select(func.count()).select_from(IdempotencyRecord)
                                           .where(IdempotencyRecord.user_id == user_id,
                                                  IdempotencyRecord.key == key))).scalar_one()
        if found or not wait:
            return bool(found)
        await asyncio.sleep(0.02)


async def hold_a_connection(resources, free: asyncio.Event, all_held: asyncio.Event,
                            held: list, size: int) -> None:
    async with resources.db.session() as session:
        await session.execute(select(1))
        held.append(session)
        if len(held) == size:
            all_held.set()
        await free.wait()


@pytest.mark.gen_test
async def test_an_unexpected_500_releases_the_key(write_api, resources):
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    (await write_api.post(PATH, {"marker": marker}, token=me.token,
                          headers={"Idempotency-Key": key, "X-Test-Fail": "500"})
     ).error(500, code=50000)
    (await write_api.post(PATH, {"marker": marker}, token=me.token,
                          headers={"Idempotency-Key": key})).ok(201)


@pytest.mark.gen_test
async def test_a_4xx_answer_is_stored_and_replayed(write_api, resources):
    me = await write_api.login()
    marker, key = new_marker(), new_key()
    body = {"marker": marker}
    first = await write_api.post(PATH, body, token=me.token,
                                 headers={"Idempotency-Key": key, "X-Test-Fail": "409"})
    first.error(409, code=40900)
    replay = await write_api.post(PATH, body, token=me.token, headers={"Idempotency-Key": key})
    assert replay.status == 409 and replay.body == first.body
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await rows_written(resources, marker) == 0


@pytest.mark.gen_test
async def test_keys_are_per_user(write_api, resources):
    alice, bob = await write_api.login(), await write_api.login()
    marker, key = new_marker(), new_key()
    (await write_api.post(PATH, {"marker": marker, "amount": 1}, token=alice.token,
                          headers={"Idempotency-Key": key})).ok(201)
    bobs = await write_api.post(PATH, {"marker": marker, "amount": 2}, token=bob.token,
                                headers={"Idempotency-Key": key})
    assert bobs.ok(201)["amount"] == 2 and "Idempotent-Replayed" not in bobs.headers
    assert await rows_written(resources, marker) == 2


@pytest.mark.gen_test
@pytest.mark.parametrize("bad_key", ["x" * 129, "has space", "ключ", "semi;colon", "a/b"])
async def test_malformed_keys_are_422_on_the_header(write_api, resources, bad_key):
    me = await write_api.login()
    marker = new_marker()
    reply = await write_api.post(PATH, {"marker": marker}, token=me.token,
                                 headers={"Idempotency-Key": bad_key.encode().decode("latin-1")})
    reply.error(422, code=42200, field="Idempotency-Key")
    assert await rows_written(resources, marker) == 0


@pytest.mark.gen_test
async def test_longest_allowed_key_works(write_api, resources):
    me = await write_api.login()
    reply = await write_api.post(PATH, {"marker": new_marker()}, token=me.token,
                                 headers={"Idempotency-Key": "a:b.c_d-" + "x" * 120})
    reply.ok(201)


@pytest.mark.gen_test
async def test_without_a_key_every_request_writes(write_api, resources):
    me = await write_api.login()
    marker = new_marker()
    for _ in range(2):
        (await write_api.post(PATH, {"marker": marker}, token=me.token)).ok(201)
    assert await rows_written(resources, marker) == 2


@pytest.mark.gen_test
async def test_idempotent_endpoint_still_requires_auth(write_api, resources):
    reply = await write_api.post(PATH, {"marker": new_marker()},
                                 headers={"Idempotency-Key": new_key()})
    reply.error(401, code=40100)


def test_declaring_an_idempotent_endpoint_without_auth_is_refused():
    with pytest.raises(TypeError):
        endpoint(auth=False, idempotent=True)

"""Idempotent writes: the first response to an `Idempotency-Key` is stored and replayed.

An endpoint opts in with `@endpoint(idempotent=True)`; a request carrying the header then
runs here. The unique (user_id, key) row decides concurrent double submits: one request
inserts it as `pending` and runs the handler, the others get the replay (when done) or 409.
The stored response is committed *before* the client sees it, so a client that got an answer
and retries gets the same bytes back; when it cannot be stored at once (the database busy or
away) the client still gets its answer and the response is stored in the background as soon
as it can be (a retry meanwhile gets 409). 5xx answers are not stored (the client may retry;
a pending row that cannot be deleted at once is deleted in the background the same way);
4xx answers are (the request was definitively answered).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy.exc
from sqlalchemy import delete, insert, select, update

from gateway.errormap import to_app_error
from models.base import utcnow
from models.platform import IdempotencyRecord
from pawhome.platform import codec, errors

log = logging.getLogger("pawhome.gateway")

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-:.]{1,128}$")
# Two requests can race through "insert, read, take over"; more rounds than this means
# something else is wrong (e.g. a clock far off), and the client gets 409 to retry.
_MAX_ROUNDS = 3


def check_key(raw: str) -> str:
    if not KEY_PATTERN.match(raw):
        raise errors.ValidationFailed(errors=[errors.field_error(
            HEADER, "must be 1-128 characters of A-Z a-z 0-9 _ - : .")])
    return raw


def _canonical(value: Any) -> Any:
    # Dicts keep insertion order, so sorting keys here makes the codec's output canonical.
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def request_hash(method: str, route_template: str, path: str, body: bytes) -> str:
    """sha256 over what makes two requests "the same": method, route, path and body.

    A JSON body is canonicalised (sorted keys, no whitespace) so a client re-serialising the
    same object differently is still the same request.
    """
    try:
        canonical = codec.dumps(_canonical(codec.loads(body))) if body.strip() else b""
    except codec.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), route_template.encode(), path.encode()):
        digest.update(part + b"\0")
    digest.update(canonical)
    return digest.hexdigest()


async def run_idempotent(handler, call: Callable[[], Awaitable[None]]) -> None:
    """Run `call` at most once per (user, Idempotency-Key); replay its response afterwards."""
    if handler.auth is None:  # endpoint() refuses idempotent=True without auth
        raise errors.Unauthorized()
    key = check_key(handler.request.headers.get(HEADER, ""))
    user_id = handler.auth.user_id
    fingerprint = request_hash(handler.request.method, handler.route_template,
                               handler.request.path, handler.request.body or b"")
    record_id = await _claim(handler.r.db, user_id, key, fingerprint, handler)
    if record_id is None:
        return  # replayed

    _capture_finish(handler)
    try:
        await call()
    except Exception as error:
        app_error = _client_error(error)
        if app_error is None:  # 5xx (or unexpected): forget the attempt, the client may retry
            _release_finish(handler)
            if not await _forget(handler.r.db, record_id):
                _retry_later(lambda: _forget(handler.r.db, record_id),
                             f"released idempotency record {record_id} after a failed release",
                             f"gave up releasing idempotency record {record_id}: its key "
                             "answers 409 until it expires")
            raise
        # A 4xx is a definitive answer: render it now so it can be stored and replayed.
        handler.send_error(app_error.status, exc_info=sys.exc_info())
    status = handler.get_status()
    body = b"".join(handler._write_buffer)
    _release_finish(handler)
    if not await _store(handler.r.db, record_id, status, body):
        # The write happened; the client must still get its answer, now. Until the response
        # is stored the pending row answers retries 409 (never running the write twice);
        # storing it later turns those into replays.
        _retry_later(lambda: _store(handler.r.db, record_id, status, body),
                     f"stored the response of idempotency record {record_id} after a failed "
                     "store",
                     f"gave up storing the response of idempotency record {record_id}: its "
                     "key answers 409 until it expires")
    handler.finish()


def _client_error(error: BaseException) -> errors.AppError | None:
    app_error = to_app_error(error, 500)
    return app_error if app_error.status < 500 else None


def _capture_finish(handler) -> None:
    """Make handler.finish() only buffer, so the response is stored before it is sent."""

    def finish(chunk: Any = None) -> None:
        if chunk is not None:
            handler.write(chunk)

    handler.finish = finish


def _release_finish(handler) -> None:
    handler.__dict__.pop("finish", None)


async def _claim(db, user_id: int, key: str, fingerprint: str, handler) -> int | None:
    """Insert the pending record and return its id, or replay/refuse and return None.

    The insert comes first: a fresh key (nearly every request) costs one statement, and the
    unique (user_id, key) decides a race. Only a key seen before is read."""
    ttl = dt.timedelta(seconds=handler.r.settings.idempotency_ttl_seconds)
    for _ in range(_MAX_ROUNDS):
        now = utcnow()
        async with db.session() as session:
            try:
                inserted = await session.execute(insert(IdempotencyRecord).values(
                    user_id=user_id, key=key, request_hash=fingerprint, state="pending",
                    created_at=now, expires_at=now + ttl))
                await session.commit()
                return int(inserted.inserted_primary_key[0])
            except sqlalchemy.exc.IntegrityError:
                await session.rollback()  # the key was used: read its record
            record = (await session.execute(
                select(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id,
                                                IdempotencyRecord.key == key))).scalar_one_or_none()
            if record is None:
                continue  # swept in between: insert again
            if record.expires_at <= now:
                # Expired but not yet swept: take it over, unless another request just did.
                result = await session.execute(
                    update(IdempotencyRecord)
                    .where(IdempotencyRecord.id == record.id,
                           IdempotencyRecord.expires_at <= now)
                    .values(request_hash=fingerprint, state="pending", response_status=None,
                            response_body=None, created_at=now, expires_at=now + ttl))
                await session.commit()
                if result.rowcount == 1:
                    return record.id
                continue
            _answer_from(record, fingerprint, handler)
            return None
    raise errors.IdempotencyInProgress()


def _answer_from(record: IdempotencyRecord, fingerprint: str, handler) -> None:
    if record.request_hash != fingerprint:
        raise errors.IdempotencyMismatch(errors=[errors.field_error(
            HEADER, "this key was already used with a different request")])
    if record.state != "done":
        raise errors.IdempotencyInProgress()
    handler.set_status(record.response_status or 200)
    handler.set_header(REPLAY_HEADER, "true")
    handler.finish(record.response_body or b"")


async def _store(db, record_id: int, status: int, body: bytes) -> bool:
    try:
        async with db.session() as session, session.begin():
            await session.execute(update(IdempotencyRecord)
                                  .where(IdempotencyRecord.id == record_id)
                                  .values(state="done", response_status=status,
                                          response_body=body))
    except Exception:
        log.warning("could not store the idempotent response of record %s", record_id,
                    exc_info=True)
        return False
    return True


async def _forget(db, record_id: int) -> bool:
    try:
        async with db.session() as session, session.begin():
            await session.execute(delete(IdempotencyRecord).where(
                IdempotencyRecord.id == record_id, IdempotencyRecord.state == "pending"))
    except Exception:
        log.warning("could not release idempotency record %s", record_id, exc_info=True)
        return False
    return True


# Delays of the background retries of a store or a release that failed (the database was
# busy or away: for a release, the very reason the request failed). Until the pending row is
# stored or gone, a retry of the request is answered 409 "in progress" (for
# IDEMPOTENCY_TTL_SECONDS, a day, if that never happened). Both writes are safe to make late:
# a stored response is the one the client already got; a released request was rolled back.
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_retrying: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks


def _retry_later(attempt: Callable[[], Awaitable[bool]], succeeded: str,
                 gave_up: str) -> asyncio.Task:
    """Call `attempt` after each of RETRY_DELAYS until it returns True; log the outcome."""

    async def retry() -> None:
        for delay in RETRY_DELAYS:
            await asyncio.sleep(delay)
            if await attempt():
                log.info(succeeded)
                return
        log.error(gave_up)

    task = asyncio.get_running_loop().create_task(retry())
    _retrying.add(task)
    task.add_done_callback(_retrying.discard)
    return task

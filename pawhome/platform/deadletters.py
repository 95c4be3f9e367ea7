"""Dead letters: tasks that failed for good, kept with their arguments and error.

Workers record them (workers/base.py `PawTask.on_failure`); admins list them and retry one,
which re-enqueues the task through the outbox and marks the letter resolved in the same
transaction. Resolved letters are purged by a beat job after DEAD_LETTER_RETENTION_DAYS.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.base import utcnow
from models.platform import DeadLetter
from pawhome.platform import codec
from pawhome.platform.errors import Conflict, NotFound
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

MAX_TRACEBACK_CHARS = 30_000
MAX_ERROR_CHARS = 4_000
DeadLetterState = Literal["open", "resolved", "all"]


def _json_safe(value: Any) -> Any:
    """Task arguments as stored; anything the codec cannot write becomes its repr."""
    try:
        return codec.loads(codec.dumps(value))
    except TypeError:
        return repr(value)


async def record_dead_letter(session: AsyncSession, *, task_id: str, task_name: str,
                             args: list[Any], kwargs: dict[str, Any], error: str, traceback: str,
                             retries: int) -> DeadLetter:
    """Record a failed task; the same task id failing again updates its open letter."""
    letter = (await session.execute(
        select(DeadLetter).where(DeadLetter.task_id == task_id,
                                 DeadLetter.resolved_at.is_(None)))).scalars().first()
    if letter is None:
        letter = DeadLetter(task_id=task_id, task_name=task_name)
        session.add(letter)
    letter.args = _json_safe(list(args))
    letter.kwargs = _json_safe(dict(kwargs))
    letter.error = error[:MAX_ERROR_CHARS]
    letter.traceback = traceback[-MAX_TRACEBACK_CHARS:]
    letter.retries = retries
    letter.failed_at = utcnow()
    await session.flush()
    return letter


def dead_letter_view(letter: DeadLetter) -> dict[str, Any]:
    return {"id": letter.id, "task_id": letter.task_id, "task_name": letter.task_name,
            "args": letter.args, "kwargs": letter.kwargs, "error": letter.error,
            "traceback": letter.traceback, "retries": letter.retries,
            "failed_at": letter.failed_at, "resolved_at": letter.resolved_at}


def _state_filter(state: DeadLetterState) -> ColumnElement[bool] | None:
    if state == "open":
        return DeadLetter.resolved_at.is_(None)
    if state == "resolved":
        return DeadLetter.resolved_at.is_not(None)
    return None


async def list_dead_letters(resources: Resources, page: PageQuery,
                            state: DeadLetterState = "open",
                            task_name: str | None = None) -> dict[str, Any]:
    """A page of dead letters, newest first, as admins see them."""
    conditions = [c for c in (_state_filter(state),) if c is not None]
    if task_name:
        conditions.append(DeadLetter.task_name == task_name)
    async with resources.db.session() as session:
        total = (await session.execute(
            select(func.count(DeadLetter.id)).where(*conditions))).scalar_one()
        rows = (await session.execute(
            select(DeadLetter).where(*conditions).order_by(DeadLetter.id.desc())
            .offset(page.offset).limit(page.limit))).scalars().all()
        return page_result([dead_letter_view(d) for d in rows], int(total), page)


async def retry_dead_letter(resources: Resources, letter_id: int) -> dict[str, Any]:
    """Re-enqueue a dead letter's task (through the outbox) and mark the letter resolved, in
    one transaction (409 if it was retried already); returns the letter as admins see it."""
    async with resources.db.session() as session, session.begin():
        query = select(DeadLetter).where(DeadLetter.id == letter_id)
        if session.bind is None or session.bind.dialect.name != "sqlite":
            query = query.with_for_update()  # two admins clicking retry enqueue it once
        letter = (await session.execute(query)).scalars().first()
        if letter is None:
            raise NotFound("No such dead letter")
        if letter.resolved_at is not None:
            raise Conflict("This dead letter was already retried or resolved")
        kwargs = letter.kwargs if isinstance(letter.kwargs, dict) else {}
        args = letter.args if isinstance(letter.args, list) else []
        enqueue_task(session, letter.task_name, *args, **kwargs)
        letter.resolved_at = utcnow()
        await session.flush()
        return dead_letter_view(letter)


async def purge_resolved_dead_letters(session: AsyncSession, older_than: dt.datetime,
                                      batch: int = 1000) -> int:
    """Delete resolved letters resolved before `older_than`; open ones are never purged."""
    ids = (await session.execute(
        select(DeadLetter.id).where(DeadLetter.resolved_at < older_than).limit(batch)
    )).scalars().all()
    if ids:
        await session.execute(delete(DeadLetter).where(DeadLetter.id.in_(ids)))
    return len(ids)

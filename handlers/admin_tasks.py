"""Admin endpoints for the task fleet: dead letters (tasks that failed for good) and retrying them."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform import deadletters
from pawhome.platform.errors import Conflict


class DeadLetterQuery(PageQuery):
    state: Literal["open", "resolved", "all"] = "open"
    task_name: str | None = Field(None, max_length=128)


class DeadLettersHandler(ApiHandler):
    @endpoint(roles=("admin",), query=DeadLetterQuery, tags=("admin",),
              summary="Tasks that exhausted their retries, newest first",
              description="`state`: open (default), resolved or all.")
    async def get(self) -> None:
        async with self.r.db.session() as session:
            letters, total = await deadletters.list_dead_letters(
                session, offset=self.query.offset, limit=self.query.limit,
                state=self.query.state, task_name=self.query.task_name)
        self.ok(page_result([deadletters.dead_letter_view(d) for d in letters], total,
                            self.query))


class DeadLetterRetryHandler(ApiHandler):
    @endpoint(roles=("admin",), tags=("admin",), errors=(Conflict,),
              summary="Re-enqueue a dead letter's task and mark the letter resolved",
              description="409 if the letter was already retried.")
    async def post(self, letter_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            letter = await deadletters.retry_dead_letter(session, letter_id)
        self.ok(deadletters.dead_letter_view(letter))

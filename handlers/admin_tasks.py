"""Admin endpoints for the task fleet: dead letters (tasks that failed for good), retrying
them."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.handler import ApiHandler, endpoint
from pawhome.platform import deadletters
from pawhome.platform.errors import Conflict
from pawhome.platform.pagination import PageQuery


class DeadLetterQuery(PageQuery):
    state: Literal["open", "resolved", "all"] = "open"
    task_name: str | None = Field(None, max_length=128)


class DeadLettersHandler(ApiHandler):
    @endpoint(roles=("admin",), query=DeadLetterQuery, tags=("admin",),
              summary="Tasks that exhausted their retries, newest first",
              description="`state`: open (default), resolved or all.")
    async def get(self) -> None:
        self.ok(await deadletters.list_dead_letters(self.r, self.query, state=self.query.state,
                                                    task_name=self.query.task_name))


class DeadLetterRetryHandler(ApiHandler):
    @endpoint(roles=("admin",), tags=("admin",), errors=(Conflict,),
              summary="Re-enqueue a dead letter's task and mark the letter resolved",
              description="409 if the letter was already retried.")
    async def post(self, letter_id: int) -> None:
        self.ok(await deadletters.retry_dead_letter(self.r, letter_id))

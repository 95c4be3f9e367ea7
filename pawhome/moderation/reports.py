"""User reports of posts, comments and users: the one writer of `reports`.

One report per reporter and target (409 on a repeat); a target the reporter cannot see does
not exist for them (404). Enough distinct reports hide a visible post or comment pending an
admin's review (MODERATION_REPORT_HIDE_THRESHOLD); the admin queue lists what was reported.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.community import Comment, Post, Report
from models.users import User
from pawhome.community import posts
from pawhome.identity import users
from pawhome.moderation import reviews as moderation
from pawhome.platform.errors import Conflict, NotFound, ValidationFailed, field_error
from pawhome.platform.resources import Resources
from settings import Settings

REASONS = ("spam", "abuse", "sexual", "violence", "illegal", "fraud", "animal_cruelty",
           "misinformation", "other")

ReportReason = Literal["spam", "abuse", "sexual", "violence", "illegal", "fraud",
                       "animal_cruelty", "misinformation", "other"]


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_type: Literal["post", "comment", "user"]
    target_id: int = Field(ge=1, le=2**63 - 1)
    reason: ReportReason
    detail: str = Field("", max_length=500)


async def _require_visible_target(session: AsyncSession, reporter_id: int, target_type: str,
                                  target_id: int) -> Any:
    """The reported row, if the reporter can see it; NotFound otherwise."""
    if target_type == "post":
        return await posts.get_visible_post(session, reporter_id, target_id)
    if target_type == "comment":
        comment = await session.get(Comment, target_id)
        if comment is None or comment.deleted_at is not None or (
                comment.status != "visible" and comment.author_id != reporter_id):
            raise NotFound("Comment not found")
        await posts.get_visible_post(session, reporter_id, comment.post_id)
        if comment.author_id != reporter_id and (
                await users.is_blocked(session, reporter_id, comment.author_id)
                or await users.is_blocked(session, comment.author_id, reporter_id)):
            raise NotFound("Comment not found")
        return comment
    user = await session.get(User, target_id)
    if user is None:
        raise NotFound("User not found")
    return user


async def create_report(resources: Resources, reporter_id: int,
                        body: ReportBody) -> dict[str, Any]:
    """File a report (409 on a repeat); enough distinct reports hide the target pending an
    admin's review."""
    async with resources.db.session() as session, session.begin():
        return await _file_report(session, resources.settings, reporter_id, body)


async def _file_report(session: AsyncSession, settings: Settings, reporter_id: int,
                       body: ReportBody) -> dict[str, Any]:
    target = await _require_visible_target(session, reporter_id, body.target_type,
                                           body.target_id)
    author_id = target.id if body.target_type == "user" else target.author_id
    if author_id == reporter_id:
        raise ValidationFailed(errors=[field_error("target_id", "you cannot report yourself")])
    report = Report(reporter_id=reporter_id, target_type=body.target_type,
                    target_id=body.target_id, reason=body.reason, detail=body.detail.strip())
    try:
        async with session.begin_nested():
            session.add(report)
            await session.flush()
    except IntegrityError:
        raise Conflict("You already reported this") from None
    hidden = await _hide_if_reported_enough(session, settings, body.target_type,
                                            body.target_id)
    return {"id": report.id, "target_type": report.target_type, "target_id": report.target_id,
            "reason": report.reason, "status": report.status, "target_hidden": hidden}


async def open_report_count(session: AsyncSession, target_type: str, target_id: int) -> int:
    return int((await session.execute(select(func.count(func.distinct(Report.reporter_id)))
                                       .where(Report.target_type == target_type,
                                              Report.target_id == target_id,
                                              Report.status == "open"))).scalar_one())


async def _hide_if_reported_enough(session: AsyncSession, settings: Settings, target_type: str,
                                   target_id: int) -> bool:
    """Hide a visible post or comment once enough distinct users reported it. The target row
    is locked first, so concurrent reports count one after another."""
    threshold = settings.moderation_report_hide_threshold
    if target_type not in ("post", "comment") or threshold <= 0:
        return False
    model = Post if target_type == "post" else Comment
    row = (await session.execute(select(model).where(model.id == target_id)
                                 .with_for_update())).scalar_one()
    if row.status != "visible":
        return False
    if await open_report_count(session, target_type, target_id) < threshold:
        return False
    reason = "held for review (reported)"
    if target_type == "post":
        await posts.set_status(session, target_id, "hidden", reason)
    else:
        await moderation.set_comment_status(session, row, "hidden", reason)
    return True

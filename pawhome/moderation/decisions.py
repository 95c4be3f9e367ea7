"""The admins' side of moderation: the queue of content waiting for a decision (held,
pending or reported) and the decisions themselves, approve and reject.

A decision moves the post (posts.set_status) or comment (reviews.set_comment_status), records
the admin's verdict as a ModerationCheck and closes the target's open reports, in one
transaction; docs/moderation.md.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Result, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Comment, ModerationCheck, Post, Report
from models.media import Media
from models.users import User
from pawhome.community import counters, posts
from pawhome.media import uploads
from pawhome.messaging import notifications
from pawhome.moderation import reviews
from pawhome.platform.errors import NotFound
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

# -- the queue ----------------------------------------------------------------------------------


def _excerpt(text: str, length: int = 200) -> str:
    return text if len(text) <= length else text[:length] + "…"


async def _report_counts(session: AsyncSession, target_type: str,
                         ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = await session.execute(
        select(Report.target_id, func.count()).where(
            Report.target_type == target_type, Report.target_id.in_(ids),
            Report.status == "open").group_by(Report.target_id))
    return {int(t): int(n) for t, n in rows}


async def _latest_checks(session: AsyncSession, target_type: str,
                         ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = (await session.execute(select(ModerationCheck).where(
        ModerationCheck.target_type == target_type, ModerationCheck.target_id.in_(ids))
        .order_by(ModerationCheck.id))).scalars()
    return {row.target_id: {"provider": row.provider, "suggest": row.suggest,
                            "label": row.label, "state": row.state} for row in rows}


def _post_item(post: Post) -> dict[str, Any]:
    return {"target_type": "post", "target_id": post.id, "author_id": post.author_id,
            "text": _excerpt(post.text), "media_ids": list(post.media_ids or []),
            "status": post.status, "status_reason": post.status_reason,
            "created_at": post.created_at}


def _comment_item(comment: Comment) -> dict[str, Any]:
    return {"target_type": "comment", "target_id": comment.id, "author_id": comment.author_id,
            "post_id": comment.post_id, "text": _excerpt(comment.text),
            "status": comment.status, "status_reason": "", "created_at": comment.created_at}


async def list_queue(resources: Resources, kind: str, state: str,
                     page: PageQuery) -> dict[str, Any]:
    """Content waiting for an admin: posts or comments in a state (hidden: held for review;
    pending: not yet decided), oldest first; or (state "reported") content with open
    reports, most reported first. Each item carries its open report count and last check,
    and a post its images and videos (`media`, with their URLs) for the admin to look at."""
    async with resources.db.session() as session:
        items, total = await _queue_page(session, kind, state, page.offset, page.limit)
        await _attach_media(session, resources, items)
    return page_result(items, total, page)


async def _attach_media(session: AsyncSession, resources: Resources,
                        items: list[dict[str, Any]]) -> None:
    wanted = {int(m) for item in items for m in item.get("media_ids", ())}
    if not wanted:
        return
    found = {m.id: m for m in (await session.execute(
        select(Media).where(Media.id.in_(wanted)))).scalars()}
    for item in items:
        if "media_ids" in item:
            item["media"] = [uploads.media_view(resources.settings, found[int(m)])
                             for m in item["media_ids"] if int(m) in found]


def _rows_of(result: Result[Any]) -> list[Post | Comment]:
    """The posts or comments of a select(model) (mypy cannot follow a model chosen at run
    time)."""
    return list(result.scalars())


def _item(row: Post | Comment) -> dict[str, Any]:
    return _post_item(row) if isinstance(row, Post) else _comment_item(row)


async def _queue_page(session: AsyncSession, kind: str, state: str, offset: int,
                      limit: int) -> tuple[list[dict[str, Any]], int]:
    model: type[Post] | type[Comment] = Post if kind == "post" else Comment
    items: list[dict[str, Any]]
    if state == "reported":
        counted = (select(Report.target_id.label("tid"), func.count().label("n"))
                   .where(Report.target_type == kind, Report.status == "open")
                   .group_by(Report.target_id).subquery())
        total = int((await session.execute(select(func.count()).select_from(counted)))
                    .scalar_one())
        ranked = (await session.execute(select(counted.c.tid, counted.c.n)
                                        .order_by(counted.c.n.desc(), counted.c.tid)
                                        .offset(offset).limit(limit))).all()
        ids = [int(r.tid) for r in ranked]
        if kind == "user":
            people = {u.id: u for u in (await session.execute(
                select(User).where(User.id.in_(ids)))).scalars()} if ids else {}
            items = [{"target_type": "user", "target_id": i, "author_id": i,
                      "text": people[i].nickname if i in people else "",
                      "status": people[i].status if i in people else "missing"} for i in ids]
        else:
            found = _rows_of(await session.execute(select(model).where(model.id.in_(ids)))) \
                if ids else []
            content = {row.id: row for row in found}
            items = [_item(content[i]) for i in ids if i in content]
    else:
        if kind == "user":
            return [], 0  # users are never held or pending, only reported
        conditions = [model.status == state, model.deleted_at.is_(None)]
        total = int((await session.execute(select(func.count()).select_from(model)
                                           .where(*conditions))).scalar_one())
        listed = _rows_of(await session.execute(select(model).where(*conditions)
                                                .order_by(model.created_at, model.id)
                                                .offset(offset).limit(limit)))
        items = [_item(row) for row in listed]
    target_ids = [int(item["target_id"]) for item in items]
    reports = await _report_counts(session, kind, target_ids)
    checks = await _latest_checks(session, kind, target_ids) if kind != "user" else {}
    for item in items:
        item["report_count"] = reports.get(item["target_id"], 0)
        item["last_check"] = checks.get(item["target_id"])
    return items, total


# -- decisions ----------------------------------------------------------------------------------


async def _close_reports(session: AsyncSession, target_type: str, target_id: int,
                         admin_id: int, outcome: str) -> None:
    await session.execute(update(Report).where(
        Report.target_type == target_type, Report.target_id == target_id,
        Report.status == "open").values(status=outcome, handled_by=admin_id,
                                        handled_at=utcnow()))


async def _load_target(session: AsyncSession, target_type: str, target_id: int) -> Any:
    models: dict[str, type[Post] | type[Comment]] = {"post": Post, "comment": Comment}
    model = models.get(target_type)
    if model is None:
        raise NotFound("Unknown moderation target")
    found = _rows_of(await session.execute(select(model).where(model.id == target_id)
                                           .with_for_update()))
    row = found[0] if found else None
    if row is None or row.deleted_at is not None:
        raise NotFound(f"{target_type.capitalize()} not found")
    return row


async def approve(resources: Resources, admin_id: int, target_type: str,
                  target_id: int) -> dict[str, Any]:
    """An admin publishes a post or comment (from hidden, pending or removed). The post's
    images an admin has now seen pass; open reports are dismissed; the author is told."""
    async with resources.db.session() as session, session.begin():
        row = await _load_target(session, target_type, target_id)
        if target_type == "post":
            media_ids = [int(m) for m in (row.media_ids or [])]
            if media_ids:
                await session.execute(update(Media).where(
                    Media.id.in_(media_ids), Media.moderation != "pass")
                    .values(moderation="pass"))
            await posts.set_status(session, target_id, "visible", "")
        else:
            await reviews.set_comment_status(session, row, "visible")
            counted_post = row.post_id
        session.add(ModerationCheck(target_type=target_type, target_id=target_id,
                                    provider="admin", state="done", suggest="pass",
                                    detail={"admin_id": admin_id}, decided_at=utcnow()))
        await _close_reports(session, target_type, target_id, admin_id, "dismissed")
        reviews.tell_staff(session, "moderation.decided", target_type, target_id, "visible")
    if target_type == "comment":
        await counters.publish_post_counters(resources, counted_post)
    return {"target_type": target_type, "target_id": target_id, "status": "visible"}


async def reject(resources: Resources, admin_id: int, target_type: str, target_id: int,
                 reason: str) -> dict[str, Any]:
    """An admin takes a post or comment down with a reason: removed, open reports upheld,
    the author told over the socket and in their system notifications."""
    async with resources.db.session() as session, session.begin():
        row = await _load_target(session, target_type, target_id)
        if target_type == "post":
            await posts.set_status(session, target_id, "removed", reason)
        else:
            await reviews.set_comment_status(session, row, "removed", reason)
        session.add(ModerationCheck(target_type=target_type, target_id=target_id,
                                    provider="admin", state="done", suggest="risky",
                                    label="rejected", detail={"admin_id": admin_id,
                                                              "reason": reason},
                                    decided_at=utcnow()))
        await _close_reports(session, target_type, target_id, admin_id, "upheld")
        reviews.tell_staff(session, "moderation.decided", target_type, target_id, "removed")
        what = "post" if target_type == "post" else "comment"
        await notifications.notify(
            session, row.author_id, "system", f"moderation.{what}_removed",
            target_type=target_type, target_id=target_id,
            payload={"title": f"Your {what} was removed", "text":
                     f"Your {what} was removed: {reason}", "reason": reason})
        post_id = row.post_id if target_type == "comment" else target_id
    if target_type == "comment":
        await counters.publish_post_counters(resources, post_id)
    return {"target_type": target_type, "target_id": target_id, "status": "removed",
            "reason": reason}

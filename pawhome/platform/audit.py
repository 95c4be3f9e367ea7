"""The audit log: every admin and merchant write records who did what to which record, with
a short before/after summary, in the same transaction as the write (so a write that rolls
back leaves no entry, and one that commits always has one). Admins read it page by page.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.platform import AuditEntry
from pawhome.platform import codec
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

SUMMARY_VALUE_CHARS = 200


def _summary(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Long text is cut: the log says what changed, it is not a copy of the record. Values
    the JSON column cannot take as they are (times, decimals) are put as the API writes
    them."""
    if values is None:
        return None
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str) and len(value) > SUMMARY_VALUE_CHARS:
            value = value[:SUMMARY_VALUE_CHARS] + "…"
        out[key] = value
    return dict(codec.loads(codec.dumps(out)))


def record(session: AsyncSession, *, actor_id: int | None, actor_role: str, action: str,
           target_type: str, target_id: int | str, before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None) -> None:
    """Add an entry to the caller's unit of work. Caller commits."""
    session.add(AuditEntry(actor_id=actor_id, actor_role=actor_role, action=action,
                           target_type=target_type, target_id=str(target_id),
                           before=_summary(before), after=_summary(after)))


def _view(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "actor_id": entry.actor_id, "actor_role": entry.actor_role,
            "action": entry.action, "target_type": entry.target_type,
            "target_id": entry.target_id, "before": entry.before, "after": entry.after,
            "created_at": entry.created_at}


async def list_entries(resources: Resources, query: PageQuery, *, actor_id: int | None = None,
                       action: str | None = None, target_type: str | None = None,
                       target_id: str | None = None) -> dict[str, Any]:
    """Entries newest first, filtered by actor, action (exact or a "product." prefix), and
    target."""
    conditions = []
    if actor_id is not None:
        conditions.append(AuditEntry.actor_id == actor_id)
    if action:
        conditions.append(AuditEntry.action.startswith(action, autoescape=True)
                          if action.endswith(".") else AuditEntry.action == action)
    if target_type:
        conditions.append(AuditEntry.target_type == target_type)
    if target_id:
        conditions.append(AuditEntry.target_id == target_id)
    async with resources.db.session() as session:
        total = int((await session.execute(
            select(func.count()).select_from(AuditEntry).where(*conditions))).scalar_one())
        rows = (await session.execute(
            select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc())
            .offset(query.offset).limit(query.limit))).scalars()
        return page_result([_view(row) for row in rows], total, query)

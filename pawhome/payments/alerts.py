"""Telling admins about money that does not add up: a notify that does not match our
records, a reconciliation with mismatches. A `system` notification to every active admin, in
the transaction that found it (so it is sent once, with the record). docs/payments.md.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.users import User
from pawhome.messaging import notifications

# A deployment has a handful of admins; past this many, the most recently active are told
# (the admin endpoints list everything anyway).
MAX_ADMINS_TOLD = 50


async def tell_admins(session: AsyncSession, kind: str, title: str, body: str, *,
                      target_type: str = "", target_id: int | None = None,
                      extra: dict[str, Any] | None = None) -> int:
    """A system notification to each active admin (the MAX_ADMINS_TOLD most recently logged
    in); returns how many were told. Call it last in the transaction (notify locks each
    recipient's settings row). Caller commits."""
    admin_ids = sorted((await session.execute(
        select(User.id).where(User.role == "admin", User.status == "active")
        .order_by(User.last_login_at.desc(), User.id.desc())
        .limit(MAX_ADMINS_TOLD))).scalars())
    for admin_id in admin_ids:  # in id order: concurrent callers lock recipients alike
        await notifications.notify(session, admin_id, "system", kind, target_type=target_type,
                                   target_id=target_id,
                                   payload={"title": title, "body": body, **(extra or {})})
    return len(admin_ids)

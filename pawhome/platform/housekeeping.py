"""Deleting rows that have outlived their purpose (run by beat jobs in workers/default.py).

Each function deletes one bounded batch and returns how many rows went, so a job never holds
long locks; the job calls it until a batch comes back short. All of them are idempotent.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.platform import IdempotencyRecord
from models.users import RefreshToken


async def purge_expired_idempotency_records(session: AsyncSession, now: dt.datetime,
                                            batch: int = 1000) -> int:
    ids = (await session.execute(
        select(IdempotencyRecord.id).where(IdempotencyRecord.expires_at < now).limit(batch)
    )).scalars().all()
    if ids:
        await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
    return len(ids)


async def purge_expired_refresh_tokens(session: AsyncSession, now: dt.datetime,
                                       batch: int = 1000) -> int:
    """Delete refresh tokens past their expiry, used and revoked ones included.

    Used and revoked tokens are kept until then on purpose: presenting a used token is how
    reuse (theft) is detected and its family revoked, and an expired token is refused anyway.
    """
    ids = (await session.execute(
        select(RefreshToken.id).where(RefreshToken.expires_at < now).limit(batch)
    )).scalars().all()
    if ids:
        await session.execute(delete(RefreshToken).where(RefreshToken.id.in_(ids)))
    return len(ids)

"""Login sessions: issuing access tokens with rotating refresh tokens.

A login starts a session (a refresh-token family, `sid`). Each refresh consumes the presented
refresh token and issues a new pair in the same family; presenting an already-used refresh
token revokes the whole family and every access token issued in it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.users import RefreshToken, User
from pawhome.tokens import issue_access_token
from settings import Settings


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token_pair(session: AsyncSession, settings: Settings, user: User,
                           family_id: str | None = None) -> dict:
    """Create a refresh token (new family unless given) and an access token. Caller commits."""
    family_id = family_id or uuid.uuid4().hex
    refresh = secrets.token_urlsafe(32)
    session.add(RefreshToken(
        user_id=user.id, family_id=family_id, token_hash=hash_refresh_token(refresh),
        expires_at=utcnow() + dt.timedelta(seconds=settings.refresh_token_ttl)))
    access, ttl = issue_access_token(settings, user.id, user.role, family_id)
    return {"access_token": access, "token_type": "Bearer", "expires_in": ttl,
            "refresh_token": refresh, "refresh_expires_in": settings.refresh_token_ttl}

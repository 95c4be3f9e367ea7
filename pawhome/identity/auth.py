"""Login sessions: the login flows, rotating refresh tokens, logout, bans and roles.

A login starts a session (a refresh-token family, `sid`). Each refresh consumes the presented
refresh token and issues a new pair in the same family; presenting an already-used refresh
token revokes the whole family and every access token issued in it. Bans and role changes
end a user's sessions at once. docs/auth.md describes the flows and the Redis keys.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.users import ROLES, RefreshToken, User
from pawhome.identity import sms, users
from pawhome.identity.tokens import (
    AccessClaims,
    issue_access_token,
    revoke_access_token,
    revoke_all_for_user,
    revoke_session,
)
from pawhome.integrations.wechat import WeChatClient, decrypt_user_data
from pawhome.platform import events
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import (
    Forbidden,
    RefreshTokenReused,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    ValidationFailed,
    field_error,
)
from pawhome.platform.resources import Resources
from pawhome.search import index as search
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


# -- logins ---------------------------------------------------------------------------------


T = TypeVar("T")


async def _login_transaction(resources: Resources,
                             work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run a login's find-or-create in a transaction, retried when it collided with a
    concurrent first login of the same person: the retry's fresh snapshot sees the other
    login's user."""
    return await run_transaction(resources.db, work)


async def login_dev(resources: Resources, openid: str, role: str) -> dict[str, Any]:
    """Development login: any openid, no WeChat; a new user may be given a role."""
    async def work(session: AsyncSession) -> dict[str, Any]:
        user, is_new = await users.get_or_create_by_openid(session, openid)
        users.ensure_active(user)
        if is_new and role != "user":
            user.role = role
        users.mark_login(user)
        tokens = await issue_token_pair(session, resources.settings, user)
        return {**tokens, "user_id": user.id, "is_new_user": is_new}
    return await _login_transaction(resources, work)


def session_key_key(cache: Any, user_id: int) -> str:
    return cache.key("wechat", "session_key", user_id)


async def login_with_wechat(resources: Resources, code: str, encrypted_data: str | None = None,
                            iv: str | None = None) -> dict[str, Any]:
    """wx.login() code -> tokens; the first login creates the user (from the decrypted
    profile, when the client sent one). The session_key stays in Redis, never in a reply."""
    settings = resources.settings
    if (encrypted_data is None) != (iv is None):
        missing = "iv" if iv is None else "encryptedData"
        raise ValidationFailed(errors=[field_error(missing, "encryptedData and iv go together")])
    wx = await WeChatClient(resources).code_to_session(code)
    user_info = None
    if encrypted_data is not None and iv is not None:
        user_info = decrypt_user_data(wx.session_key, encrypted_data, iv, settings.wechat_appid)

    async def work(session: AsyncSession) -> dict[str, Any]:
        user, is_new = await users.get_or_create_by_openid(session, wx.openid, wx.unionid)
        users.ensure_active(user)
        if is_new and user_info:
            users.apply_wechat_profile(settings, user, user_info)
        users.mark_login(user)
        tokens = await issue_token_pair(session, settings, user)
        return {**tokens, "user_id": user.id, "is_new_user": is_new}

    result = await _login_transaction(resources, work)
    await resources.cache.redis.set(session_key_key(resources.cache, result["user_id"]),
                                    wx.session_key, ex=settings.wechat_session_key_ttl)
    return result


async def session_key_of(resources: Resources, user_id: int) -> str | None:
    """The session_key of the user's latest WeChat login, while it is kept."""
    value = await resources.cache.redis.get(session_key_key(resources.cache, user_id))
    if not value:
        return None
    return value.decode() if isinstance(value, bytes) else value


async def bind_phone(resources: Resources, user_id: int, code: str) -> dict[str, Any]:
    """Bind the number behind a getPhoneNumber code to the caller; 409 if taken."""
    phone = await WeChatClient(resources).get_phone_number(code)
    async with resources.db.session() as session, session.begin():
        user = await users.bind_phone(session, user_id, phone)
        return users.profile(user)


async def send_sms_code(resources: Resources, phone: str) -> dict[str, int]:
    return await sms.send_login_code(resources, phone)


async def login_with_sms(resources: Resources, phone: str, code: str) -> dict[str, Any]:
    """Phone + one-time code -> tokens; a new number creates a user."""
    await sms.verify_login_code(resources, phone, code)

    async def work(session: AsyncSession) -> dict[str, Any]:
        user, is_new = await users.get_or_create_by_phone(session, phone)
        users.ensure_active(user)
        users.mark_login(user)
        tokens = await issue_token_pair(session, resources.settings, user)
        return {**tokens, "user_id": user.id, "is_new_user": is_new}
    return await _login_transaction(resources, work)


# -- refresh, logout, session -------------------------------------------------------------


async def refresh_session(resources: Resources, refresh_token: str) -> dict[str, Any]:
    """Rotate: consume this refresh token, issue a new pair in the same family.

    The consume is a conditional UPDATE (`used_at IS NULL`), so of two concurrent refreshes
    with one token exactly one wins; the other is a reuse like any later one, and a reuse
    revokes the family and its access tokens.
    """
    settings = resources.settings
    now = utcnow()
    async with resources.db.session() as session:
        async with session.begin():
            row = (await session.execute(select(RefreshToken).where(
                RefreshToken.token_hash == hash_refresh_token(refresh_token)))).scalar_one_or_none()
            if row is None:
                raise TokenInvalid("Unknown refresh token")
            if row.revoked_at is not None:
                raise TokenRevoked("This session was ended")
            reused = row.used_at is not None
            if not reused and row.expires_at <= now:
                raise TokenExpired("Refresh token expired; log in again")
            if not reused:
                consumed = cast(CursorResult[Any], await session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None),
                           RefreshToken.revoked_at.is_(None))
                    .values(used_at=now)))
                reused = consumed.rowcount != 1
            if not reused:
                user = await users.get_user(session, row.user_id)
                users.ensure_active(user)
                tokens = await issue_token_pair(session, settings, user, family_id=row.family_id)
                return {**tokens, "user_id": user.id}
        family_id, user_id = row.family_id, row.user_id
    await revoke_family(resources, family_id, user_id=user_id)
    raise RefreshTokenReused()


async def revoke_family(resources: Resources, family_id: str, user_id: int | None = None) -> None:
    """End one login session: its access tokens at once (Redis), its refresh tokens (DB),
    and (given the user) its open WebSockets on every gateway."""
    await revoke_session(resources.cache, resources.settings, family_id)
    async with resources.db.session() as session, session.begin():
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow()))
    if user_id is not None:
        await events.publish_control(resources.cache, user_id, "revoke", sid=family_id)


async def logout(resources: Resources, claims: AccessClaims) -> None:
    await revoke_access_token(resources.cache, resources.settings, claims)
    await revoke_family(resources, claims.sid, user_id=claims.user_id)


def session_info(claims: AccessClaims) -> dict[str, Any]:
    return {"user_id": claims.user_id, "role": claims.role, "expires_in": claims.expires_in,
            "session_id": claims.sid}


async def end_all_sessions(resources: Resources, session: AsyncSession, user_id: int) -> None:
    """Every access token issued so far stops now; every refresh token is revoked."""
    await revoke_all_for_user(resources.cache, resources.settings, user_id)
    await events.publish_control(resources.cache, user_id, "revoke", all=True)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()))


# -- bans and roles (admin) ----------------------------------------------------------------


async def ban_user(resources: Resources, admin_id: int, user_id: int,
                   reason: str) -> dict[str, Any]:
    """Ban a user: their tokens stop working at once and logins are refused (403)."""
    if user_id == admin_id:
        raise Forbidden("Admins cannot ban themselves")
    async with resources.db.session() as session, session.begin():
        user = await users.get_user(session, user_id)
        user.status = "banned"
        user.banned_reason = reason
        await end_all_sessions(resources, session, user_id)
        search.index_later(session, "user", user_id)  # a banned user leaves search
        await users.status_changed.run(session, user_id)
        return users.admin_view(user)


async def unban_user(resources: Resources, user_id: int) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        user = await users.get_user(session, user_id)
        user.status = "active"
        user.banned_reason = ""
        search.index_later(session, "user", user_id)
        await users.status_changed.run(session, user_id)
        return users.admin_view(user)


async def set_role(resources: Resources, admin_id: int, user_id: int, role: str) -> dict[str, Any]:
    """Change a user's role. Their access tokens carry the old role, so they are ended and
    the client refreshes (the refresh token survives and the new pair has the new role)."""
    if role not in ROLES:
        raise ValidationFailed(errors=[field_error("role", "unknown role")])
    if user_id == admin_id:
        raise Forbidden("Admins cannot change their own role")
    async with resources.db.session() as session, session.begin():
        user = await users.get_user(session, user_id)
        if user.role != role:
            user.role = role
            await revoke_all_for_user(resources.cache, resources.settings, user_id)
            await events.publish_control(resources.cache, user_id, "revoke", all=True)
        return users.admin_view(user)

"""Staff accounts and console sessions: create, sign in (argon2 password, optional TOTP,
lockout after repeated failures), sign out, disable.

A sign-in issues an access token of the mapped user (so every /v1 endpoint's role checks
apply unchanged) under a session id starting with `console.`, which the gateway accepts only
from the HttpOnly session cookie together with the session's CSRF header on writes
(pawhome/identity/tokens.py). Redis keeps which staff account a session belongs to, and the
sessions of each account, so disabling an account ends its sessions at once.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.staff import StaffAccount
from models.users import User
from pawhome.identity.tokens import (
    CONSOLE_SID_PREFIX,
    AccessClaims,
    console_csrf_token,
    issue_access_token,
    revoke_session,
)
from pawhome.platform import audit
from pawhome.platform.errors import (
    NotFound,
    StaffAccountDisabled,
    StaffAccountLocked,
    StaffLoginTaken,
    StaffOtpRequired,
    StaffSignInFailed,
    StaffUserNotEligible,
    UserBanned,
)
from pawhome.platform.resources import Resources

STAFF_ROLES = ("admin", "merchant")
LOGIN_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{3,64}$")
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()
# Verified against when the login name is unknown, so an unknown name costs the same time as
# a wrong password and does not tell an attacker which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _password_matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A random password for a new account (printed once by the command that made it)."""
    return secrets.token_urlsafe(12)


def staff_view(staff: StaffAccount, user: User) -> dict[str, Any]:
    return {"id": staff.id, "login": staff.login, "display_name": staff.display_name,
            "user_id": user.id, "role": user.role, "nickname": user.nickname,
            "totp": staff.totp_secret is not None, "disabled": staff.disabled,
            "last_login_at": staff.last_login_at}


def _session_key(resources: Resources, sid: str) -> str:
    return resources.cache.key("console", "session", sid)


def _sessions_key(resources: Resources, staff_id: int) -> str:
    return resources.cache.key("console", "staff-sessions", staff_id)


# -- accounts ---------------------------------------------------------------------------------

async def create_staff(resources: Resources, *, login: str, password: str, user_id: int,
                       display_name: str = "", totp: bool = False) -> dict[str, Any]:
    """A new staff account mapped to an admin or merchant user. With `totp` (admins only) the
    reply carries the provisioning URI for an authenticator app, shown once."""
    if not LOGIN_PATTERN.match(login):
        raise StaffUserNotEligible("Login names are 3-64 letters, digits or ._@-")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffUserNotEligible(f"Passwords have at least {MIN_PASSWORD_LENGTH} characters")
    async with resources.db.session() as session, session.begin():
        user = await session.get(User, user_id)
        if user is None or user.role not in STAFF_ROLES:
            raise StaffUserNotEligible()
        if totp and user.role != "admin":
            raise StaffUserNotEligible("TOTP is for admin staff accounts")
        taken = await session.execute(select(StaffAccount.id).where(StaffAccount.login == login))
        if taken.first() is not None:
            raise StaffLoginTaken()
        staff = StaffAccount(login=login, password_hash=hash_password(password), user_id=user_id,
                             display_name=display_name or user.nickname,
                             totp_secret=pyotp.random_base32() if totp else None,
                             failed_logins=0, disabled=False)
        session.add(staff)
        await session.flush()
        audit.record(session, actor_id=None, actor_role="system", action="staff.create",
                     target_type="staff", target_id=staff.id,
                     after={"login": login, "user_id": user_id, "totp": totp})
        view = staff_view(staff, user)
    if staff.totp_secret:
        view["totp_uri"] = pyotp.TOTP(staff.totp_secret).provisioning_uri(
            name=login, issuer_name="PAWHome")
    return view


async def set_password(session: AsyncSession, staff: StaffAccount, password: str) -> None:
    """Replace a staff account's password and clear its lockout. Caller commits."""
    staff.password_hash = hash_password(password)
    staff.failed_logins = 0
    staff.locked_until = None


async def set_disabled(resources: Resources, staff_id: int, disabled: bool,
                       actor: AccessClaims | None = None) -> dict[str, Any]:
    """Disable (every session ends now) or re-enable a staff account."""
    async with resources.db.session() as session, session.begin():
        staff = await session.get(StaffAccount, staff_id, with_for_update=True)
        if staff is None:
            raise NotFound("No such staff account")
        user = await session.get(User, staff.user_id)
        assert user is not None  # the foreign key cascades
        staff.disabled = disabled
        audit.record(session, actor_id=actor.user_id if actor else None,
                     actor_role=actor.role if actor else "system",
                     action="staff.disable" if disabled else "staff.enable",
                     target_type="staff", target_id=staff_id)
        view = staff_view(staff, user)
    if disabled:
        await _end_sessions(resources, staff_id)
    return view


async def _end_sessions(resources: Resources, staff_id: int) -> None:
    redis = resources.cache.redis
    key = _sessions_key(resources, staff_id)
    for sid in await redis.smembers(key):
        sid = sid.decode() if isinstance(sid, bytes) else str(sid)
        await revoke_session(resources.cache, resources.settings, sid,
                             ttl=resources.settings.console_session_ttl)
    await redis.delete(key)


# -- sign-in ----------------------------------------------------------------------------------

def _fail(staff: StaffAccount, resources: Resources, now: dt.datetime) -> None:
    """Count a failed sign-in; lock the account at the limit. Caller commits."""
    staff.failed_logins += 1
    if staff.failed_logins >= resources.settings.console_max_failed_logins:
        staff.locked_until = now + dt.timedelta(seconds=resources.settings.console_lockout_seconds)
        staff.failed_logins = 0


def _locked(staff: StaffAccount, now: dt.datetime) -> StaffAccountLocked:
    assert staff.locked_until is not None
    wait = max(1, int((staff.locked_until - now).total_seconds()))
    return StaffAccountLocked(headers={"Retry-After": str(wait)},
                              data={"retry_after": wait})


async def sign_in(resources: Resources, login: str, password: str,
                  otp: str | None = None) -> dict[str, Any]:
    """Check a staff member's password (and TOTP code when the account has one) and start a
    console session. The reply holds the access token (the handler puts it in the cookie),
    its lifetime, the CSRF token and the staff member's view. A failure is counted and
    committed before it is raised; at the limit the account locks for a while."""
    now = utcnow()
    refusal: Exception | None = None
    async with resources.db.session() as session, session.begin():
        found = await session.execute(select(StaffAccount).where(StaffAccount.login == login)
                                      .with_for_update())
        staff = found.scalar_one_or_none()
        if staff is None:
            _password_matches(_DUMMY_HASH, password)
            raise StaffSignInFailed()
        if staff.locked_until is not None and staff.locked_until > now:
            raise _locked(staff, now)
        if not _password_matches(staff.password_hash, password):
            _fail(staff, resources, now)
            refusal = _locked(staff, now) if staff.locked_until and staff.locked_until > now \
                else StaffSignInFailed()
        elif staff.totp_secret and not otp:
            refusal = StaffOtpRequired()
        elif staff.totp_secret and not pyotp.TOTP(staff.totp_secret).verify(otp or "",
                                                                           valid_window=1):
            _fail(staff, resources, now)
            refusal = StaffOtpRequired("动态验证码错误")
        if refusal is None:
            if staff.disabled:
                raise StaffAccountDisabled()
            user = await session.get(User, staff.user_id)
            assert user is not None
            if user.status == "banned":
                raise UserBanned()
            if user.role not in STAFF_ROLES:
                raise StaffAccountDisabled("该员工账号对应的用户已不是管理员或商家")
            staff.failed_logins = 0
            staff.locked_until = None
            staff.last_login_at = now
            audit.record(session, actor_id=user.id, actor_role=user.role,
                         action="staff.sign_in", target_type="staff", target_id=staff.id)
            view = staff_view(staff, user)
    if refusal is not None:
        raise refusal
    ttl = resources.settings.console_session_ttl
    sid = CONSOLE_SID_PREFIX + uuid.uuid4().hex
    token, ttl = issue_access_token(resources.settings, view["user_id"], view["role"], sid,
                                    ttl=ttl)
    redis = resources.cache.redis
    await redis.set(_session_key(resources, sid), view["id"], ex=ttl)
    await redis.sadd(_sessions_key(resources, view["id"]), sid)
    await redis.expire(_sessions_key(resources, view["id"]), ttl)
    return {"access_token": token, "expires_in": ttl,
            "csrf_token": console_csrf_token(resources.settings, sid), "staff": view}


async def current_session(resources: Resources, claims: AccessClaims) -> dict[str, Any]:
    """The signed-in staff member and the session's CSRF token (a reloaded page asks for it:
    it cannot read the HttpOnly cookie). NotFound for a token that is not a console session."""
    if not claims.sid.startswith(CONSOLE_SID_PREFIX):
        raise NotFound("Not a console session")
    staff_id = await resources.cache.redis.get(_session_key(resources, claims.sid))
    if staff_id is None:
        raise NotFound("Not a console session")
    async with resources.db.session() as session:
        staff = await session.get(StaffAccount, int(staff_id))
        user = await session.get(User, claims.user_id)
        if staff is None or user is None:
            raise NotFound("Not a console session")
        view = staff_view(staff, user)
    merchant = None
    if user.role == "merchant":
        merchant = {"user_id": user.id, "name": user.nickname}
    return {"staff": view, "csrf_token": console_csrf_token(resources.settings, claims.sid),
            "expires_in": claims.expires_in, "merchant": merchant}


async def sign_out(resources: Resources, claims: AccessClaims) -> None:
    """End this console session: its token is dead on every gateway from now on. A token
    that is not a console session's (an app user's) is 404 and stays valid: the app signs
    out through /v1/auth/logout."""
    redis = resources.cache.redis
    staff_id = await redis.get(_session_key(resources, claims.sid))
    if staff_id is None:
        raise NotFound("Not a console session")
    await revoke_session(resources.cache, resources.settings, claims.sid,
                         ttl=resources.settings.console_session_ttl)
    await redis.delete(_session_key(resources, claims.sid))
    await redis.srem(_sessions_key(resources, int(staff_id)), claims.sid)


async def find_staff(session: AsyncSession, login: str) -> StaffAccount | None:
    """The staff account of a login name. Caller's unit of work."""
    found = await session.execute(select(StaffAccount).where(StaffAccount.login == login))
    return found.scalar_one_or_none()

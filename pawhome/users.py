"""Users: creation on first login, profiles, what others may see."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.users import User, UserSettings
from pawhome.errors import NotFound, UserBanned


async def get_or_create_by_openid(session: AsyncSession, openid: str,
                                  unionid: str | None = None) -> tuple[User, bool]:
    """The user with this openid, created if new; (user, is_new). Caller commits."""
    user = (await session.execute(select(User).where(User.openid == openid))).scalar_one_or_none()
    if user is not None:
        return user, False
    user = User(openid=openid, unionid=unionid, nickname="", role="user", status="active")
    session.add(user)
    await session.flush()
    session.add(UserSettings(user_id=user.id, notification_prefs={}, privacy_prefs={}))
    return user, True


def ensure_active(user: User) -> None:
    if user.status == "banned":
        raise UserBanned()


def mark_login(user: User) -> None:
    user.last_login_at = utcnow()


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def profile(user: User) -> dict[str, Any]:
    """The owner's view of their own profile."""
    return {
        "id": user.id, "nickname": user.nickname, "avatar_url": user.avatar_url,
        "gender": user.gender, "birthday": user.birthday.isoformat() if user.birthday else None,
        "bio": user.bio, "role": user.role, "phone_bound": bool(user.phone),
        "created_at": user.created_at,
    }

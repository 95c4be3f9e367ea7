"""Users: creation on first login, profiles, settings, block lists, what others may see.

The one module that writes `users`, `user_settings` and `user_blocks` (bans and roles are
session matters and live in pawhome/identity/auth.py). Request-body models for profile and settings
live here too, so the REST handlers and any later caller validate the same way.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.base import utcnow
from models.users import User, UserBlock, UserFollow, UserSettings
from pawhome.platform import presence, wordfilter
from pawhome.platform.cache import Cache
from pawhome.platform.errors import (
    NotFound,
    PhoneTaken,
    SensitiveContent,
    UserBanned,
    ValidationFailed,
    field_error,
)
from pawhome.platform.fields import NOT_BLANK, Gender, no_null_default
from pawhome.platform.hooks import Hook
from pawhome.platform.logs import mask_openid, mask_phone
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.search import index as search
from settings import Settings
from settings import get_settings as load_settings  # (get_settings here: the user's)

# Request models carry the configured limits, so the OpenAPI document a gateway serves states
# the limits it enforces.
_settings = load_settings()

# -- creation and lookup ----------------------------------------------------------------------


async def _get_or_create(session: AsyncSession, column: Any, value: str,
                         **fields: Any) -> tuple[User, bool]:
    """Two first logins of one person at once both insert: one wins, the other gets an
    IntegrityError (or an InnoDB deadlock); pawhome.identity.auth retries that login's transaction,
    whose fresh snapshot then finds the winner's user."""
    user = (await session.execute(select(User).where(column == value))).scalar_one_or_none()
    if user is not None:
        return user, False
    user = User(nickname="", role="user", status="active", **fields)
    session.add(user)
    await session.flush()
    session.add(UserSettings(user_id=user.id, notification_prefs={}, privacy_prefs={}))
    await session.flush()
    return user, True


async def get_or_create_by_openid(session: AsyncSession, openid: str,
                                  unionid: str | None = None) -> tuple[User, bool]:
    """The user with this openid, created if new; (user, is_new). Caller commits."""
    user, is_new = await _get_or_create(session, User.openid, openid, openid=openid,
                                        unionid=unionid)
    if not is_new and unionid and not user.unionid:
        user.unionid = unionid
    return user, is_new


async def get_or_create_by_phone(session: AsyncSession, phone: str) -> tuple[User, bool]:
    """The user with this phone number (SMS login), created if new. Caller commits."""
    return await _get_or_create(session, User.phone, phone, phone=phone)


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


async def bind_phone(session: AsyncSession, user_id: int, phone: str) -> User:
    """Attach a verified phone number to the user; 409 if another account has it."""
    owner = (await session.execute(select(User.id).where(User.phone == phone))).scalar()
    if owner is not None and owner != user_id:
        raise PhoneTaken()
    user = await get_user(session, user_id)
    user.phone = phone
    try:
        await session.flush()
    except IntegrityError as error:  # bound by someone else a moment ago
        raise PhoneTaken() from error
    return user


# -- profiles ---------------------------------------------------------------------------------


def profile(user: User) -> dict[str, Any]:
    """The owner's view of their own profile."""
    return {
        "id": user.id, "nickname": user.nickname, "avatar_url": user.avatar_url,
        "gender": user.gender, "birthday": user.birthday.isoformat() if user.birthday else None,
        "bio": user.bio, "role": user.role, "phone_bound": bool(user.phone),
        "phone": mask_phone(user.phone) if user.phone else None,
        "created_at": user.created_at,
    }


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc or any(c.isspace() for c in value):
        raise ValueError("must be an https URL")
    return value


class ProfileUpdate(BaseModel):
    """PUT /v1/users/me: every field optional; only the fields sent change."""
    model_config = ConfigDict(extra="forbid")
    # May be left out (None: not sent), never sent as null: not Optional in the document.
    nickname: str = Field(None, min_length=1,  # type: ignore[assignment]
                          max_length=_settings.nickname_max_length, pattern=NOT_BLANK,
                          json_schema_extra=no_null_default)
    avatar_url: str | None = Field(None, max_length=512)
    gender: Gender | None = None
    birthday: dt.date | None = None
    bio: str | None = Field(None, max_length=500)

    @field_validator("avatar_url")
    @classmethod
    def _avatar_is_https(cls, value: str | None) -> str | None:
        return value if value in (None, "") else _https_url(value)

    @field_validator("birthday")
    @classmethod
    def _birthday_in_the_past(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and (value > dt.date.today() or value.year < 1900):
            raise ValueError("must be a date between 1900 and today")
        return value


async def my_profile(resources: Resources, user_id: int) -> dict[str, Any]:
    """The caller's own profile."""
    async with resources.db.session() as session:
        return profile(await get_user(session, user_id))


def clean_nickname(settings: Settings, raw: str) -> str:
    """A nickname as stored: stripped, 1..nickname_max_length characters, no listed word
    (hard or soft: a nickname is public everywhere and nobody reviews it)."""
    nickname = raw.strip()
    if not 1 <= len(nickname) <= settings.nickname_max_length:
        raise ValidationFailed(errors=[field_error(
            "nickname", f"must be 1 to {settings.nickname_max_length} characters")])
    verdict = wordfilter.check(nickname)
    if not verdict.clean:
        raise SensitiveContent(errors=[field_error("nickname", "contains a prohibited word")])
    return nickname


async def update_profile(resources: Resources, user_id: int,
                         changes: ProfileUpdate) -> dict[str, Any]:
    """Change the fields sent; returns the profile as the owner sees it."""
    async with resources.db.session() as session, session.begin():
        return await _update_profile(session, resources.settings, user_id, changes)


async def _update_profile(session: AsyncSession, settings: Settings, user_id: int,
                          changes: ProfileUpdate) -> dict[str, Any]:
    user = await get_user(session, user_id)
    sent = changes.model_dump(exclude_unset=True)
    if "nickname" in sent:
        user.nickname = clean_nickname(settings, sent["nickname"] or "")
    if "avatar_url" in sent:
        user.avatar_url = sent["avatar_url"] or ""
    if "gender" in sent:
        user.gender = sent["gender"] or 0
    if "birthday" in sent:
        user.birthday = sent["birthday"]
    if "bio" in sent:
        bio = (sent["bio"] or "").strip()
        if wordfilter.check(bio).hard:
            raise SensitiveContent(errors=[field_error("bio", "contains a prohibited word")])
        user.bio = bio
    if "nickname" in sent or "bio" in sent:
        search.index_later(session, "user", user_id)
    await session.flush()
    return profile(user)


def apply_wechat_profile(settings: Settings, user: User, data: dict[str, Any]) -> None:
    """Fill a new user's profile from decrypted WeChat userInfo, skipping anything we would
    refuse from the user directly (too long, a listed word, a non-https avatar)."""
    nickname = data.get("nickName")
    if isinstance(nickname, str):
        with contextlib.suppress(ValidationFailed, SensitiveContent):
            user.nickname = clean_nickname(settings, nickname[:settings.nickname_max_length])
    avatar = data.get("avatarUrl")
    if isinstance(avatar, str) and len(avatar) <= 512:
        with contextlib.suppress(ValueError):
            user.avatar_url = _https_url(avatar)
    if data.get("gender") in (0, 1, 2):
        user.gender = data["gender"]


# How a person who chose not to be named (an anonymous post's author) is shown, wherever
# they would be: posts, comments, notifications, share cards.
ANONYMOUS_NAME = "匿名用户"
ANONYMOUS_PERSON: dict[str, Any] = {"id": None, "nickname": ANONYMOUS_NAME, "avatar_url": ""}


# -- settings ---------------------------------------------------------------------------------


class NotificationPrefs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    likes: bool = True
    comments: bool = True
    follows: bool = True
    messages: bool = True
    orders: bool = True
    appointments: bool = True
    system: bool = True


class PrivacyPrefs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    show_gender: bool = True
    show_birthday: bool = False
    show_bio: bool = True
    allow_messages_from: Literal["everyone", "following", "nobody"] = "everyone"
    show_online: bool = True
    # Listed on the leaderboards (pawhome/virtualpet/leaderboards.py); off: left out of all.
    show_on_leaderboards: bool = True
    # Who may @mention the user (pawhome/community/mentions.py): following = people they follow.
    allow_mentions_from: Literal["everyone", "following", "nobody"] = "everyone"


class NotificationPrefsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    likes: bool | None = None
    comments: bool | None = None
    follows: bool | None = None
    messages: bool | None = None
    orders: bool | None = None
    appointments: bool | None = None
    system: bool | None = None


class PrivacyPrefsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    show_gender: bool | None = None
    show_birthday: bool | None = None
    show_bio: bool | None = None
    allow_messages_from: Literal["everyone", "following", "nobody"] | None = None
    show_online: bool | None = None
    allow_mentions_from: Literal["everyone", "following", "nobody"] | None = None
    show_on_leaderboards: bool | None = None


class SettingsUpdate(BaseModel):
    """PUT /v1/users/me/settings: only the keys sent change."""
    model_config = ConfigDict(extra="forbid")
    notification_prefs: NotificationPrefsPatch | None = None
    privacy_prefs: PrivacyPrefsPatch | None = None


def _merged(model: type[BaseModel], stored: dict | None) -> BaseModel:
    known = {k: v for k, v in (stored or {}).items() if k in model.model_fields}
    try:
        return model.model_validate(known)
    except ValidationError:  # a stored value of the wrong type: fall back to defaults
        return model()


async def _settings_row(session: AsyncSession, user_id: int) -> UserSettings:
    row = await session.get(UserSettings, user_id)
    if row is None:
        await get_user(session, user_id)
        row = UserSettings(user_id=user_id, notification_prefs={}, privacy_prefs={})
        session.add(row)
    return row


def _settings_view(row: UserSettings | None) -> dict[str, Any]:
    """Stored preferences over the defaults; unknown stored keys are dropped."""
    notification = row.notification_prefs if row else None
    privacy = row.privacy_prefs if row else None
    return {"notification_prefs": _merged(NotificationPrefs, notification).model_dump(),
            "privacy_prefs": _merged(PrivacyPrefs, privacy).model_dump()}


async def get_settings(resources: Resources, user_id: int) -> dict[str, Any]:
    """The user's notification and privacy preferences (stored over the defaults)."""
    async with resources.db.session() as session:
        return _settings_view(await session.get(UserSettings, user_id))


def notification_prefs_of_row(row: UserSettings | None) -> NotificationPrefs:
    """The effective notification preferences in a (possibly locked) settings row."""
    return _merged(NotificationPrefs,  # type: ignore[return-value]
                   row.notification_prefs if row else None)


def privacy_of_stored(stored: dict[str, Any] | None) -> PrivacyPrefs:
    """The effective privacy preferences from a settings row's stored `privacy_prefs` (for
    readers that load the column themselves, as the chat rules' batch statement does)."""
    return _merged(PrivacyPrefs, stored)  # type: ignore[return-value]


async def privacy_of(session: AsyncSession, user_id: int) -> PrivacyPrefs:
    row = await session.get(UserSettings, user_id)
    return privacy_of_stored(row.privacy_prefs if row else None)


# Run inside the transaction that changed a user's privacy preferences (session, user_id):
# the leaderboards list or drop the user (show_on_leaderboards).
privacy_changed: Hook[[AsyncSession, int]] = Hook("identity.privacy_changed")
# Run inside the transaction that banned or unbanned a user (session, user_id): what lists
# users by name (the leaderboards) drops or lists them again at once, not at a rebuild.
status_changed: Hook[[AsyncSession, int]] = Hook("identity.status_changed")


async def change_settings(resources: Resources, user_id: int,
                          changes: SettingsUpdate) -> dict[str, Any]:
    """Change the preference keys sent; returns every preference."""
    async with resources.db.session() as session, session.begin():
        return await update_settings(session, user_id, changes)


async def update_settings(session: AsyncSession, user_id: int,
                          changes: SettingsUpdate) -> dict[str, Any]:
    """change_settings inside the caller's transaction. Caller commits."""
    row = await _settings_row(session, user_id)
    if changes.notification_prefs is not None:
        current = _merged(NotificationPrefs, row.notification_prefs).model_dump()
        current.update(changes.notification_prefs.model_dump(exclude_none=True))
        row.notification_prefs = current  # a new dict, so the JSON column is marked dirty
    if changes.privacy_prefs is not None:
        current = _merged(PrivacyPrefs, row.privacy_prefs).model_dump()
        current.update(changes.privacy_prefs.model_dump(exclude_none=True))
        row.privacy_prefs = current
        search.index_later(session, "user", user_id)  # show_bio decides what is indexed
        await privacy_changed.run(session, user_id)
    row.updated_at = utcnow()
    await session.flush()
    return _settings_view(row)


# -- what others see ------------------------------------------------------------------------


async def is_blocked(session: AsyncSession, blocker_id: int, blocked_id: int) -> bool:
    """Has `blocker_id` blocked `blocked_id`?"""
    found = await session.execute(select(UserBlock.user_id).where(
        UserBlock.user_id == blocker_id, UserBlock.blocked_id == blocked_id))
    return found.first() is not None


async def blocked_either_way(session: AsyncSession, user_id: int,
                             others: list[int] | None = None) -> set[int]:
    """Which of `others` (None: anyone) blocked `user_id` or were blocked by them (one
    query for many)."""
    if others is not None and not others:
        return set()
    mine, theirs = UserBlock.user_id == user_id, UserBlock.blocked_id == user_id
    if others is not None:
        mine = and_(mine, UserBlock.blocked_id.in_(others))
        theirs = and_(theirs, UserBlock.user_id.in_(others))
    found = await session.execute(select(UserBlock.user_id, UserBlock.blocked_id).where(
        or_(mine, theirs)))
    return {int(blocked if blocker == user_id else blocker) for blocker, blocked in found}


def hidden_from(viewer_id: int | None, user_column: Any) -> ColumnElement[bool] | None:
    """SQL: the user in `user_column` blocked the viewer or was blocked by them (None for an
    anonymous viewer: nobody is hidden). Lists and searches leave such users out."""
    if viewer_id is None:
        return None
    return or_(
        exists().where(UserBlock.user_id == viewer_id, UserBlock.blocked_id == user_column),
        exists().where(UserBlock.user_id == user_column, UserBlock.blocked_id == viewer_id))


async def is_following(session: AsyncSession, follower_id: int, followee_id: int) -> bool:
    """Does `follower_id` follow `followee_id`? (Privacy rules read it: followers-only posts,
    "only people I follow may message me"; community/follows.py writes the follows.)"""
    found = await session.execute(select(UserFollow.follower_id).where(
        UserFollow.follower_id == follower_id, UserFollow.followee_id == followee_id))
    return found.first() is not None


async def view_profile(resources: Resources, viewer_id: int | None,
                       user_id: int) -> dict[str, Any]:
    """Another user's public profile (public_profile)."""
    async with resources.db.session() as session:
        return await public_profile(session, viewer_id, user_id)


async def public_profile(session: AsyncSession, viewer_id: int | None,
                         user_id: int) -> dict[str, Any]:
    """Another user's public fields, as their privacy settings allow. A banned user, or one
    who blocked the viewer, does not exist for the viewer (404)."""
    user = await session.get(User, user_id)
    if user is None or user.status == "banned":
        raise NotFound("User not found")
    if viewer_id is not None and viewer_id != user_id and \
            await is_blocked(session, user_id, viewer_id):
        raise NotFound("User not found")
    privacy = await privacy_of(session, user_id)
    return {
        "id": user.id, "nickname": user.nickname, "avatar_url": user.avatar_url,
        "role": user.role,
        "gender": user.gender if privacy.show_gender else None,
        "birthday": user.birthday.isoformat() if user.birthday and privacy.show_birthday
        else None,
        "bio": user.bio if privacy.show_bio else None,
        "created_at": user.created_at,
        "blocked_by_me": bool(viewer_id) and viewer_id != user_id
        and await is_blocked(session, viewer_id, user_id),
    }


async def user_presence(resources: Resources, viewer_id: int, user_id: int) -> dict[str, Any]:
    """Whether a user is online and when last seen: hidden (online false, last_seen None,
    hidden true) when they turned off privacy_prefs.show_online or either blocked the other.
    A user who blocked the viewer, or a banned one, does not exist (404)."""
    async with resources.db.session() as session:
        await public_profile(session, viewer_id, user_id)  # the 404s
        hidden = False
        if viewer_id != user_id:
            privacy = await privacy_of(session, user_id)
            hidden = not privacy.show_online or await is_blocked(session, viewer_id, user_id)
    if hidden:
        return {"user_id": user_id, "online": False, "last_seen": None, "hidden": True}
    cache = resources.cache
    return {"user_id": user_id, "online": await presence.is_online(cache, user_id),
            "last_seen": await presence.last_seen(cache, user_id), "hidden": False}


# -- block list -------------------------------------------------------------------------------


# -- "has this user any block, either way?" --------------------------------------------------
#
# Asked on every logged-in read of a cached discovery page (a page with no blocks to honour is
# served as stored), so it is answered from Redis: "1" or "0" per user, filled from the
# database on a miss with SET NX. A stale "1" only costs the filtering path, a stale "0"
# would show a blocked author, so a block writes "1" for both users BEFORE its transaction
# commits (a reader that looked earlier cannot overwrite it: NX) and an unblock deletes the
# flags after its commit (the next read recounts).

BLOCKS_FLAG_SECONDS = 3600

# Run inside the blocking transaction with (session, user_id, blocked_id) once a new block
# row went in: the follows between the two end with it.
user_blocked: Hook[[AsyncSession, int, int]] = Hook("identity.user_blocked")


def blocks_flag_key(cache: Cache, user_id: int) -> str:
    return cache.key("users", "has-blocks", user_id)


async def has_any_block(session: AsyncSession, cache: Cache, user_id: int,
                        flag: bytes | None = None) -> bool:
    """Whether `user_id` blocked anyone or was blocked by anyone. `flag` is the flag's value
    if the caller already read it (the gateway's read-ahead)."""
    if flag is None:
        flag = await cache.redis.get(blocks_flag_key(cache, user_id))
    if flag is not None:
        return flag == b"1"
    found = (await session.execute(select(UserBlock.user_id).where(
        or_(UserBlock.user_id == user_id, UserBlock.blocked_id == user_id)).limit(1))).first()
    await cache.redis.set(blocks_flag_key(cache, user_id), b"1" if found else b"0",
                          ex=BLOCKS_FLAG_SECONDS, nx=True)
    return found is not None


async def set_blocked(resources: Resources, user_id: int, other_id: int,
                      blocked: bool) -> dict[str, Any]:
    """Block or unblock a user (idempotent); {"user_id", "blocked"}. A block ends the follows
    between the two; an unblock forgets both users' has-blocks flags after its commit."""
    async with resources.db.session() as session, session.begin():
        if blocked:
            await block_user(session, resources.cache, user_id, other_id)
        else:
            await unblock_user(session, user_id, other_id)
    if not blocked:
        await forget_block_flags(resources.cache, user_id, other_id)
    return {"user_id": other_id, "blocked": blocked}


async def block_user(session: AsyncSession, cache: Cache, user_id: int,
                     blocked_id: int) -> None:
    """Block `blocked_id`; blocking twice is a no-op. Caller commits (the has-blocks flags
    are written before the commit, see above)."""
    if blocked_id == user_id:
        raise ValidationFailed(errors=[field_error("user_id", "you cannot block yourself")])
    if await session.get(User, blocked_id) is None:
        raise NotFound("User not found")
    if await is_blocked(session, user_id, blocked_id):
        return
    async with cache.redis.pipeline(transaction=False) as pipe:
        for uid in (user_id, blocked_id):
            pipe.set(blocks_flag_key(cache, uid), b"1", ex=BLOCKS_FLAG_SECONDS)
        await pipe.execute()
    try:
        async with session.begin_nested():
            session.add(UserBlock(user_id=user_id, blocked_id=blocked_id))
            await session.flush()
    except IntegrityError:
        return  # a concurrent identical request blocked first
    # A block ends the follows between the two, both ways (community/follows.py connects).
    await user_blocked.run(session, user_id, blocked_id)


async def unblock_user(session: AsyncSession, user_id: int, blocked_id: int) -> None:
    """Remove a block; removing one that is not there is a no-op. Caller commits, then calls
    forget_block_flags."""
    await session.execute(delete(UserBlock).where(
        UserBlock.user_id == user_id, UserBlock.blocked_id == blocked_id))


async def forget_block_flags(cache: Cache, *user_ids: int) -> None:
    await cache.redis.delete(*[blocks_flag_key(cache, uid) for uid in user_ids])


async def list_blocks(resources: Resources, user_id: int, page: PageQuery) -> dict[str, Any]:
    """A page of the users `user_id` blocked, most recent first."""
    async with resources.db.session() as session:
        total = (await session.execute(select(func.count()).select_from(UserBlock).where(
            UserBlock.user_id == user_id))).scalar_one()
        rows = (await session.execute(
            select(UserBlock.blocked_id, UserBlock.created_at, User.nickname, User.avatar_url)
            .join(User, User.id == UserBlock.blocked_id)
            .where(UserBlock.user_id == user_id)
            .order_by(UserBlock.created_at.desc(), UserBlock.blocked_id.desc())
            .offset(page.offset).limit(page.limit))).all()
    items = [{"user_id": r.blocked_id, "nickname": r.nickname, "avatar_url": r.avatar_url,
              "blocked_at": r.created_at} for r in rows]
    return page_result(items, total, page)


# -- administration ---------------------------------------------------------------------------


def admin_view(user: User) -> dict[str, Any]:
    """What an admin sees in the user list (contact details masked all the same)."""
    return {
        "id": user.id, "nickname": user.nickname, "avatar_url": user.avatar_url,
        "role": user.role, "status": user.status, "banned_reason": user.banned_reason,
        "phone": mask_phone(user.phone) if user.phone else None,
        "openid": mask_openid(user.openid) if user.openid else None,
        "created_at": user.created_at, "last_login_at": user.last_login_at,
    }


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_users(resources: Resources, q: str | None, status: str | None,
                       role: str | None, page: PageQuery) -> dict[str, Any]:
    """Admin list, newest first: `q` matches a user id exactly or a nickname substring."""
    conditions = []
    if q:
        match = User.nickname.like(_like_pattern(q), escape="\\")
        if q.isdigit() and len(q) <= 18:
            match = or_(match, User.id == int(q))
        conditions.append(match)
    if status:
        conditions.append(User.status == status)
    if role:
        conditions.append(User.role == role)
    where = and_(*conditions) if conditions else None
    count = select(func.count()).select_from(User)
    rows = select(User).order_by(User.id.desc()).offset(page.offset).limit(page.limit)
    if where is not None:
        count, rows = count.where(where), rows.where(where)
    async with resources.db.session() as session:
        total = (await session.execute(count)).scalar_one()
        items = [admin_view(u) for u in (await session.execute(rows)).scalars()]
    return page_result(items, total, page)

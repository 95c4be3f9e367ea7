"""@mentions in posts and comments: the one module that writes `mentions` and sends the
`mention` notifications.

The client sends the mentioned people as ids (`mentions: [user id, …]`, picked from a list
while typing `@`; the text keeps `@nickname` for display): nicknames are not unique and
change, ids do not. A mention is recorded when its post or comment is written and decided
once, when its source first becomes visible (a post after moderation passes it; a comment at
once, or when moderation passes it): the mentioned user is told unless they blocked the
author or were blocked (either way), refuse mentions from the author
(`privacy_prefs.allow_mentions_from`), or cannot see the source. One row per source and user
(the primary key) means an edit that keeps a mention tells nobody again. docs/community.md.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Mention
from models.users import User
from pawhome.community import counters
from pawhome.identity import users
from pawhome.messaging import notifications
from pawhome.platform.errors import TooManyMentions, field_error

# People one post or comment may mention, its edits included.
MAX_MENTIONS = 10


async def record(session: AsyncSession, source_type: str, source_id: int, author_id: int,
                 user_ids: list[int]) -> list[int]:
    """Note the people mentioned by a new or edited post or comment (the author, unknown
    and banned users are left out, silently: a 422 would tell who exists). 422 when the
    source would mention more than MAX_MENTIONS people in all. Returns the ids newly
    recorded. Caller commits."""
    wanted = list(dict.fromkeys(int(u) for u in user_ids if int(u) != author_id))
    if not wanted:
        return []
    known = set((await session.execute(select(User.id).where(
        User.id.in_(wanted), User.status == "active"))).scalars())
    # The source's own row is locked by the write (a new row, or an edit's locked post or
    # new comment), so two edits of one source do not race past the cap.
    existing = set((await session.execute(select(Mention.user_id).where(
        Mention.source_type == source_type, Mention.source_id == source_id))).scalars())
    new = [u for u in wanted if u in known and u not in existing]
    if len(existing) + len(new) > MAX_MENTIONS:
        raise TooManyMentions(errors=[field_error(
            "mentions", f"at most {MAX_MENTIONS} people in one {source_type}, edits included")])
    now = utcnow()
    return [user_id for user_id in new
            if await counters.insert_once(session, Mention, source_type=source_type,
                                          source_id=source_id, user_id=user_id,
                                          author_id=author_id, created_at=now)]


async def mentioned(session: AsyncSession, source_type: str, source_id: int) -> int:
    """How many people this post or comment mentions (tests, admin views)."""
    return int((await session.execute(select(func.count()).select_from(Mention).where(
        Mention.source_type == source_type, Mention.source_id == source_id))).scalar_one())


async def _accepts(session: AsyncSession, user_id: int, author_id: int,
                   anonymous: bool) -> bool:
    """Does the user take mentions from this author? An anonymous author is nobody the user
    follows, so only "everyone" takes theirs (answering "following" would tell)."""
    choice = (await users.privacy_of(session, user_id)).allow_mentions_from
    if choice == "everyone":
        return True
    if choice == "nobody" or anonymous:
        return False
    return await users.is_following(session, user_id, author_id)


async def notify_pending(session: AsyncSession, source_type: str, source_id: int,
                         may_see: Callable[[int], Awaitable[bool]], *, post_id: int,
                         text: str, anonymous: bool = False) -> list[int]:
    """Decide the source's undecided mentions now that it is visible: tell each mentioned
    user who takes mentions from the author and may see the source (`may_see(user_id)`);
    notify() itself leaves out blocked pairs. Every pending mention is marked decided, told
    or not. Returns whom it told. Call it last in the transaction (notify locks the
    recipients, here in ascending id order). Caller commits."""
    rows = list((await session.execute(select(Mention).where(
        Mention.source_type == source_type, Mention.source_id == source_id,
        Mention.notified_at.is_(None)).order_by(Mention.user_id)
        .with_for_update())).scalars())
    if not rows:
        return []
    now = utcnow()
    await session.execute(update(Mention).where(
        Mention.source_type == source_type, Mention.source_id == source_id,
        Mention.notified_at.is_(None)).values(notified_at=now)
        .execution_options(synchronize_session=False))
    told = []
    payload: dict[str, Any] = {"post_id": post_id, "text": text}
    for row in rows:
        if not await _accepts(session, row.user_id, row.author_id, anonymous):
            continue
        if not await may_see(row.user_id):
            continue
        sent = await notifications.notify(
            session, row.user_id, "mention", f"{source_type}_mention", actor_id=row.author_id,
            target_type=source_type, target_id=source_id, payload=payload,
            anonymous_actor=anonymous)
        if sent is not None:
            told.append(row.user_id)
    return told

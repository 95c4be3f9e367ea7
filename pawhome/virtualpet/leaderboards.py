"""Leaderboards: Redis sorted sets fed through the outbox and rebuilt from the database.
docs/virtual-pet.md ("Leaderboards").

Boards (each all-time, and weekly per ISO week in Asia/Shanghai):
- `pet_level`: a user's best pet (level, then experience); weekly: the experience their pets
  gained this week (pet_interactions).
- `user_points`: points earned (check-ins and their bonuses, completed orders less their
  refunds, activities; not refunds of spending nor admin adjustments) — lifetime, or this week.
- `friends` is read from `pet_level`: the people I follow and me, ranked among themselves.

**Scores.** A member is a user id; its score packs the board's number and when it was reached,
so of equal numbers the one reached first ranks higher: `primary * 2**26 + (2**26 - 1 -
minutes since 2025-01-01)`. 27 bits of primary (up to 134,217,727) and 26 of minutes (until
2152) make 53: every score is an exact double. Two users reaching the same number in the same
minute are ordered by Redis (by member). The pet board's primary is the pet's total
experience: the level follows it by the level curve, so it orders by level, then experience.

**Updates.** A change that moves a score queues `default.refresh_leaderboards` in its own
transaction (the outbox): `pet_progressed(session, pet)` for a pet's level and experience
(care, adoption), the points ledger's `points_changed` hook for points, the identity
`privacy_changed` hook for show_on_leaderboards and `status_changed` for bans (a banned user
leaves the boards at once, not at the next rebuild). The task recomputes the user's entries
from the database, so running it twice, late, or out of order is harmless.

**Rebuilds.** `rebuild` (the beat job, and POST /v1/admin/leaderboards/{kind}/rebuild) writes
each board from the database into a staging key and RENAMEs it over the live one, so readers
see the old board or the new one, never half. Users whose scores changed while it read are
refreshed again after the swap. Redis losing the boards heals at the next rebuild.

**Privacy.** Users who turned off privacy_prefs.show_on_leaderboards, and banned users, are
left out of every board.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.media import Media
from models.points import PointsEntry
from models.users import User, UserFollow, UserSettings
from models.virtual_pets import PetInteraction, VirtualPet
from pawhome.identity import users
from pawhome.media import uploads
from pawhome.platform.cache import Cache
from pawhome.platform.errors import NotFound
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.pagination import MAX_LIMIT
from pawhome.platform.resources import Resources
from pawhome.points import ledger
from pawhome.points.ledger import Movement

SHANGHAI = ZoneInfo("Asia/Shanghai")
BOARDS = ("pet_level", "user_points")  # the stored boards; friends reads pet_level
KINDS = ("pet_level", "user_points", "friends")
EPOCH = dt.datetime(2025, 1, 1)
TIME_BITS = 26  # minutes since EPOCH
PRIMARY_BITS = 27
PRIMARY_MAX = (1 << PRIMARY_BITS) - 1
TIME_MAX = (1 << TIME_BITS) - 1
WEEK_KEEP_DAYS = 14  # a weekly board stays readable this long after its week ends
AROUND = 2  # entries shown above and below my own
EARNING_REASONS = ("checkin", "checkin_bonus", "order_completed", "order_refunded", "activity")
WRITE_BATCH = 5000
REBUILD_USERS_PER_READ = 50_000  # user ids read (and held in memory) at a time by a rebuild
STAGING_SECONDS = 3600  # a rebuild's staging key outlives a rebuild that died half-way
REFRESH_TASK = "default.refresh_leaderboards"
REBUILD_READ_SECONDS = 120.0  # one read of a rebuild's user range: more than a request's deadline

Period = Literal["all", "week"]
Score = tuple[int, dt.datetime]  # (primary, when it was reached)


class BoardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    period: Period = Field("all", description="all: all-time; week: this ISO week "
                                              "(Asia/Shanghai)")
    page: int = Field(1, ge=1, le=10_000)
    limit: int = Field(20, ge=1, le=MAX_LIMIT)


# -- scores and keys ------------------------------------------------------------------------------


def encode(primary: int, reached_at: dt.datetime) -> int:
    """The sorted-set score: higher primary first, then the earlier reached."""
    minutes = int((reached_at - EPOCH).total_seconds() // 60)
    return (min(max(primary, 0), PRIMARY_MAX) << TIME_BITS) \
        + TIME_MAX - min(max(minutes, 0), TIME_MAX)


def primary_of(score: float) -> int:
    return int(int(score) >> TIME_BITS)


def week_label(at: dt.datetime) -> str:
    """The ISO week (Asia/Shanghai) `at` (naive UTC) falls in, e.g. 2026W49."""
    year, week, _ = at.replace(tzinfo=dt.UTC).astimezone(SHANGHAI).isocalendar()
    return f"{year}W{week:02d}"


def week_bounds(at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The ISO week `at` falls in: Monday 00:00 Asia/Shanghai to the next, as naive UTC."""
    local = at.replace(tzinfo=dt.UTC).astimezone(SHANGHAI)
    monday = (local - dt.timedelta(days=local.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0)
    start = monday.astimezone(dt.UTC).replace(tzinfo=None)
    return start, start + dt.timedelta(days=7)


def board_key(cache: Cache, board: str, period: str, at: dt.datetime) -> str:
    if period == "week":
        return cache.key("lb", board, "week", week_label(at))
    return cache.key("lb", board, "all")


def _expiry(period: str, at: dt.datetime) -> dt.datetime | None:
    """When a board's key lapses (weekly ones two weeks after their week)."""
    if period != "week":
        return None
    return week_bounds(at)[1] + dt.timedelta(days=WEEK_KEEP_DAYS)


# -- the scores from the database -----------------------------------------------------------------

Window = tuple[dt.datetime, dt.datetime] | None
UserRange = tuple[int, int]  # user ids from the first up to (not including) the second


def _best(rows: Iterable[Any]) -> dict[int, tuple[int, int, dt.datetime, int]]:
    """Each owner's best pet of (owner, level, exp, exp_reached_at, id) rows: the highest
    level, then experience, then the earliest reached."""
    best: dict[int, tuple[int, int, dt.datetime, int]] = {}
    for owner, level, exp, reached, pet_id in rows:
        found = best.get(owner)
        if found is None or (level, exp, -reached.timestamp()) > \
                (found[0], found[1], -found[2].timestamp()):
            best[owner] = (level, exp, reached, pet_id)
    return best


async def _pet_scores(session: AsyncSession, window: Window,
                      users_in: UserRange) -> dict[int, Score]:
    low, high = users_in
    if window is None:
        pets = select(VirtualPet.owner_id, VirtualPet.level, VirtualPet.exp,
                      VirtualPet.exp_reached_at, VirtualPet.id).where(
            VirtualPet.deleted_at.is_(None), VirtualPet.owner_id >= low,
            VirtualPet.owner_id < high)
        best = _best(await session.execute(pets))
        return {owner: (exp, reached) for owner, (_level, exp, reached, _id) in best.items()}
    query = select(PetInteraction.user_id, func.sum(PetInteraction.exp_gained),
                   func.max(PetInteraction.created_at)).where(
        PetInteraction.exp_gained > 0, PetInteraction.created_at >= window[0],
        PetInteraction.created_at < window[1], PetInteraction.user_id >= low,
        PetInteraction.user_id < high).group_by(PetInteraction.user_id)
    return {int(u): (int(total), reached) for u, total, reached in await session.execute(query)}


async def _points_scores(session: AsyncSession, window: Window,
                         users_in: UserRange) -> dict[int, Score]:
    low, high = users_in
    query = select(PointsEntry.user_id, func.sum(PointsEntry.delta),
                   func.max(PointsEntry.created_at)).where(
        PointsEntry.reason.in_(EARNING_REASONS), PointsEntry.user_id >= low,
        PointsEntry.user_id < high).group_by(PointsEntry.user_id)
    if window is not None:
        query = query.where(PointsEntry.created_at >= window[0],
                            PointsEntry.created_at < window[1])
    return {int(u): (int(total), reached) for u, total, reached in await session.execute(query)
            if int(total) > 0}


SOURCES: dict[str, Callable[..., Awaitable[dict[int, Score]]]] = {
    "pet_level": _pet_scores, "user_points": _points_scores}


async def _hidden_users(session: AsyncSession, users_in: UserRange) -> set[int]:
    """Users of the range left out: banned, or show_on_leaderboards off."""
    low, high = users_in
    banned = select(User.id).where(User.status != "active", User.id >= low, User.id < high)
    settings = select(UserSettings.user_id, UserSettings.privacy_prefs).where(
        UserSettings.user_id >= low, UserSettings.user_id < high)
    hidden = set((await session.execute(banned)).scalars())
    for user_id, stored in await session.execute(settings):
        if stored and not users.privacy_of_stored(stored).show_on_leaderboards:
            hidden.add(user_id)
    return hidden


# -- updates through the outbox -------------------------------------------------------------------


def queue_refresh(session: AsyncSession, user_id: int, boards: Iterable[str]) -> None:
    """Queue the refresh of a user's entries in the caller's transaction (the outbox): it
    commits with the change that moved their scores. Caller commits."""
    enqueue_task(session, REFRESH_TASK, user_id, sorted(set(boards)),
                 utcnow().isoformat())


async def pet_progressed(session: AsyncSession, pet: VirtualPet) -> None:
    """A pet was adopted, or its level or experience changed: its owner's pet boards are
    refreshed once the caller's transaction commits. Caller commits."""
    queue_refresh(session, pet.owner_id, ("pet_level",))


@ledger.points_changed.connect
async def points_moved(session: AsyncSession, moved: Movement) -> None:
    """The points ledger moved a user's points: earnings refresh their points boards."""
    if moved.reason in EARNING_REASONS:
        queue_refresh(session, moved.user_id, ("user_points",))


@users.privacy_changed.connect
async def privacy_changed(session: AsyncSession, user_id: int) -> None:
    """show_on_leaderboards may have changed: the user is listed or dropped everywhere."""
    queue_refresh(session, user_id, BOARDS)


@users.status_changed.connect
async def status_changed(session: AsyncSession, user_id: int) -> None:
    """The user was banned (dropped everywhere at once) or unbanned (listed again)."""
    queue_refresh(session, user_id, BOARDS)


async def refresh_user(resources: Resources, user_id: int, boards: Iterable[str],
                       at: dt.datetime | None = None, now: dt.datetime | None = None) -> int:
    """The task: recompute a user's entries of `boards` from the database, all-time and for
    the week of the change `at` (and this week). Returns how many entries were written."""
    now = now or utcnow()
    weeks = {week_label(now): now}
    if at is not None:
        weeks.setdefault(week_label(at), at)
    writes: list[tuple[str, Score | None, dt.datetime | None]] = []
    async with resources.db.session() as session:
        only = (user_id, user_id + 1)
        hidden = user_id in await _hidden_users(session, only)
        for board in boards:
            if board not in SOURCES:
                continue
            found = await SOURCES[board](session, None, only)
            writes.append((board_key(resources.cache, board, "all", now),
                           None if hidden else found.get(user_id), None))
            for moment in weeks.values():
                found = await SOURCES[board](session, week_bounds(moment), only)
                writes.append((board_key(resources.cache, board, "week", moment),
                               None if hidden else found.get(user_id), _expiry("week", moment)))
    async with resources.cache.redis.pipeline(transaction=False) as pipe:
        for key, score, expires in writes:
            if score is None:
                pipe.zrem(key, str(user_id))
                continue
            pipe.zadd(key, {str(user_id): encode(*score)})
            if expires is not None:
                pipe.expireat(key, expires.replace(tzinfo=dt.UTC))
        await pipe.execute()
    return sum(1 for _key, score, _ in writes if score is not None)


# -- rebuilds -------------------------------------------------------------------------------------


class _Staging:
    """A board written batch by batch into a staging key, then RENAMEd over the live one
    (atomic for readers). The staging key expires on its own if the rebuild dies half-way."""

    def __init__(self, cache: Cache, key: str, expires: dt.datetime | None) -> None:
        self.cache, self.key, self.expires = cache, key, expires
        self.staging = f"{key}:staging:{uuid.uuid4().hex}"
        self.count = 0

    async def add(self, scores: dict[int, Score]) -> None:
        items = list(scores.items())
        for start in range(0, len(items), WRITE_BATCH):
            batch = items[start:start + WRITE_BATCH]
            async with self.cache.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(self.staging, {str(u): encode(*score) for u, score in batch})
                pipe.expire(self.staging, STAGING_SECONDS)
                await pipe.execute()
        self.count += len(items)

    async def swap_in(self) -> None:
        if not self.count:
            await self.cache.redis.delete(self.key)
            return
        async with self.cache.redis.pipeline(transaction=True) as pipe:
            if self.expires is not None:
                pipe.expireat(self.staging, self.expires.replace(tzinfo=dt.UTC))
            else:
                pipe.persist(self.staging)
            pipe.rename(self.staging, self.key)
            await pipe.execute()

    async def drop(self) -> None:
        await self.cache.redis.delete(self.staging)


async def _changed_since(session: AsyncSession, board: str, since: dt.datetime) -> set[int]:
    if board == "pet_level":
        pets = select(VirtualPet.owner_id).where(VirtualPet.updated_at >= since)
        logs = select(PetInteraction.user_id).where(PetInteraction.created_at >= since)
        return set((await session.execute(pets)).scalars()) \
            | set((await session.execute(logs)).scalars())
    return set((await session.execute(select(PointsEntry.user_id).where(
        PointsEntry.created_at >= since, PointsEntry.reason.in_(EARNING_REASONS)))).scalars())


async def rebuild(resources: Resources, board: str, now: dt.datetime | None = None,
                  users_per_read: int = REBUILD_USERS_PER_READ) -> dict[str, int]:
    """Rebuild `board` (all-time and this week) from the database; returns the entries of
    each period. It reads `users_per_read` user ids at a time (memory and each read stay
    bounded however many pets there are) into staging keys swapped in at the end. Users
    whose scores changed while it read are refreshed after the swap. The reads go to a read
    replica (DATABASE_REPLICA_URLS) that has caught up with the primary's position at the
    start, else to the primary; "changed while it read" is asked of the primary."""
    if board not in SOURCES:
        raise NotFound("No such leaderboard")
    started = utcnow()
    now = now or started
    position = await resources.db.position()  # a replica may serve the reads once it has it
    windows: dict[Period, Window] = {"all": None, "week": week_bounds(now)}
    stages = {period: _Staging(resources.cache, board_key(resources.cache, board, period, now),
                               _expiry(period, now)) for period in windows}
    try:
        async with resources.db.replica_session(position) as session:
            last = int((await session.execute(select(func.max(User.id)))).scalar() or 0)
        for low in range(0, last + 1, users_per_read):
            users_in = (low, low + users_per_read)
            async with resources.db.replica_session(position,
                                                    timeout=REBUILD_READ_SECONDS) as session:
                hidden = await _hidden_users(session, users_in)
                for period, window in windows.items():
                    scores = await SOURCES[board](session, window, users_in)
                    await stages[period].add(
                        {u: s for u, s in scores.items() if u not in hidden})
        for stage in stages.values():
            await stage.swap_in()
    finally:
        for stage in stages.values():
            await stage.drop()  # only left when the rebuild failed half-way
    counts: dict[str, int] = {period: stage.count for period, stage in stages.items()}
    async with resources.db.session() as session:
        late = await _changed_since(session, board, started)
    for user_id in sorted(late):
        await refresh_user(resources, user_id, (board,), now=now)
    return counts


async def rebuild_all(resources: Resources, now: dt.datetime | None = None) -> dict[str, Any]:
    """The beat job: every board from the database."""
    return {board: await rebuild(resources, board, now) for board in BOARDS}


async def admin_rebuild(resources: Resources, kind: str) -> dict[str, Any]:
    """POST /v1/admin/leaderboards/{kind}/rebuild (friends is read from pet_level)."""
    if kind not in KINDS:
        raise NotFound("No such leaderboard")
    board = "pet_level" if kind == "friends" else kind
    return {"kind": kind, "board": board, "entries": await rebuild(resources, board)}


# -- reading --------------------------------------------------------------------------------------


def _thumbnail_url(resources: Resources, media: Media | None) -> str | None:
    if media is None or media.status != "ready":
        return None
    views = sorted(uploads.variants_view(resources.settings, media).values(),
                   key=lambda v: v["width"] or 0)
    return str(views[0]["url"]) if views else None


async def _render(resources: Resources, ranked: list[tuple[int, int, float]],
                  ) -> list[dict[str, Any]]:
    """Items of (rank, user id, score): the user and their best pet."""
    ids = sorted({user_id for _rank, user_id, _score in ranked})
    if not ids:
        return []
    async with resources.db.session() as session:
        people = {u.id: u for u in (await session.execute(
            select(User).where(User.id.in_(ids)))).scalars()}
        pets = (await session.execute(select(VirtualPet).where(
            VirtualPet.owner_id.in_(ids), VirtualPet.deleted_at.is_(None)))).scalars().all()
        best_ids = {v[3] for v in _best(
            (p.owner_id, p.level, p.exp, p.exp_reached_at, p.id) for p in pets).values()}
        best = {p.owner_id: p for p in pets if p.id in best_ids}
        thumbs = [p.thumb_media_id for p in best.values() if p.thumb_media_id]
        media = {m.id: m for m in (await session.execute(
            select(Media).where(Media.id.in_(thumbs)))).scalars()} if thumbs else {}
    items = []
    for rank, user_id, score in ranked:
        person, pet = people.get(user_id), best.get(user_id)
        items.append({
            "rank": rank, "score": primary_of(score),
            "user": {"id": user_id, "nickname": person.nickname if person else "",
                     "avatar_url": person.avatar_url if person else ""},
            "pet": None if pet is None else {
                "id": pet.id, "name": pet.name, "species": pet.species, "level": pet.level,
                "exp": pet.exp, "thumbnail_url": _thumbnail_url(
                    resources, media.get(pet.thumb_media_id or 0))},
        })
    return items


def _page_reply(items: list[dict[str, Any]], total: int, query: BoardQuery, kind: str,
                my_rank: int | None, around: list[dict[str, Any]],
                now: dt.datetime) -> dict[str, Any]:
    me = next((item for item in around if item["rank"] == my_rank), None)
    return {"kind": kind, "period": query.period,
            "week": week_label(now) if query.period == "week" else None,
            "items": items, "total": total, "page": query.page, "limit": query.limit,
            "totalPages": -(-total // query.limit), "my_rank": my_rank, "me": me,
            "around": around}


async def get_board(resources: Resources, viewer_id: int, kind: str, query: BoardQuery,
                    now: dt.datetime | None = None) -> dict[str, Any]:
    """GET /v1/leaderboards/{kind}: a page of the board, my rank and the entries around me."""
    if kind not in KINDS:
        raise NotFound("No such leaderboard")
    now = now or utcnow()
    if kind == "friends":
        return await _friends_board(resources, viewer_id, query, now)
    key = board_key(resources.cache, kind, query.period, now)
    start = (query.page - 1) * query.limit
    async with resources.cache.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(key)
        pipe.zrevrange(key, start, start + query.limit - 1, withscores=True)
        pipe.zrevrank(key, str(viewer_id))
        total, page, mine = await pipe.execute()
    around_rows: list[Any] = []
    if mine is not None:
        low = max(0, mine - AROUND)
        around_rows = await resources.cache.redis.zrevrange(key, low, mine + AROUND,
                                                            withscores=True)
    ranked = [(start + n + 1, int(member), score) for n, (member, score) in enumerate(page)]
    near = [(max(0, mine - AROUND) + n + 1, int(member), score)
            for n, (member, score) in enumerate(around_rows)] if mine is not None else []
    rendered = await _render(resources, ranked + near)
    return _page_reply(rendered[:len(ranked)], int(total), query, kind,
                       None if mine is None else mine + 1, rendered[len(ranked):], now)


async def _friends_board(resources: Resources, viewer_id: int, query: BoardQuery,
                         now: dt.datetime) -> dict[str, Any]:
    """The people I follow and me, by the pet board of the period, ranked among us."""
    async with resources.db.session() as session:
        followees = list((await session.execute(select(UserFollow.followee_id).where(
            UserFollow.follower_id == viewer_id))).scalars())
    ids = [viewer_id, *followees]
    key = board_key(resources.cache, "pet_level", query.period, now)
    scores = await resources.cache.redis.zmscore(key, [str(i) for i in ids])
    listed = sorted(((score, user_id) for user_id, score in zip(ids, scores, strict=True)
                     if score is not None), key=lambda pair: (-pair[0], pair[1]))
    ranked_all = [(n + 1, user_id, score) for n, (score, user_id) in enumerate(listed)]
    start = (query.page - 1) * query.limit
    page = ranked_all[start:start + query.limit]
    mine = next((n for n, (_r, user_id, _s) in enumerate(ranked_all) if user_id == viewer_id),
                None)
    near = ranked_all[max(0, mine - AROUND):mine + AROUND + 1] if mine is not None else []
    rendered = await _render(resources, page + near)
    return _page_reply(rendered[:len(page)], len(ranked_all), query, "friends",
                       None if mine is None else mine + 1, rendered[len(page):], now)

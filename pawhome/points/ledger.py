"""The points ledger: the ONLY writer of points balances and ledger rows.

`change()` moves a user's points by a signed delta inside the caller's transaction (the
mall's checkout, a refund settling, a check-in), so points move with the caller's change or
not at all. Every change:

- takes the user's balance row lock first (INSERT ... ON DUPLICATE KEY UPDATE creates the
  row on first use and locks it), so the changes of one user run one after another and the
  balance can be checked, then written: it never goes below zero under any concurrency (and a
  CHECK constraint backs that up);
- looks up its idempotency key under that lock: the same key twice changes nothing and
  returns the first change (the same key for a different delta or reason is refused, 409).
  The unique (user, key) index decides the rare retry that raced the first attempt: its
  insert fails inside a savepoint and the first row is returned. (A locking read of a
  missing key would gap-lock the index, and two new users' first changes would deadlock.)
- writes one ledger row with the balance after it, and drops the cached balance once the
  caller's transaction commits (pawhome/platform/cache.py `forget_after_commit`).

Reads: the balance (cached 1 h), "expiring soon" when the rules make points expire, and the
ledger page by page (cursor, filter earned/spent). docs/points.md.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.points import REASONS, PointsAccount, PointsEntry
from models.users import User
from pawhome.platform import audit, cache, codec
from pawhome.platform.errors import (
    InsufficientPoints,
    NotFound,
    PointsKeyReused,
    ValidationFailed,
    field_error,
)
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.hooks import Hook
from pawhome.platform.pagination import MAX_LIMIT, cursor_result, decode_cursor
from pawhome.platform.resources import Resources
from pawhome.points import rules as points_rules

CHINA = dt.timezone(dt.timedelta(hours=8))  # daily caps count Beijing days
MAX_ADJUST = 10_000_000


@dataclass(frozen=True)
class Movement:
    """One ledger row as the caller sees it. `replayed`: the key was used before and this is
    the first change, unchanged. `shortfall`: what a floored change could not take."""
    entry_id: int
    user_id: int
    delta: int
    balance_after: int
    reason: str
    replayed: bool = False
    shortfall: int = 0

    def view(self) -> dict[str, Any]:
        return {"entry_id": self.entry_id, "delta": self.delta, "balance": self.balance_after,
                "reason": self.reason, "replayed": self.replayed, "shortfall": self.shortfall}


# Run in the transaction of every change that moved points (not of a replay): the points
# leaderboard (pawhome/virtualpet/leaderboards.py) queues its update there.
points_changed: Hook[[AsyncSession, Movement]] = Hook("points.points_changed")


def balance_key(user_id: int) -> tuple[str, str, int]:
    return ("points", "balance", user_id)


def day_start(now: dt.datetime) -> dt.datetime:
    """The start (naive UTC) of the Beijing day `now` (naive UTC) falls in."""
    local = now.replace(tzinfo=dt.UTC).astimezone(CHINA)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(dt.UTC).replace(tzinfo=None)


async def lock_account(session: AsyncSession, user_id: int, now: dt.datetime) -> PointsAccount:
    """Create the balance row on first use and take its lock (the lock every change of this
    user queues on). ON DUPLICATE KEY UPDATE takes the exclusive lock straight away, where
    INSERT IGNORE then SELECT ... FOR UPDATE would upgrade a shared one and deadlock."""
    values = {"user_id": user_id, "balance": 0, "earned_total": 0, "spent_total": 0,
              "updated_at": now}
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(sqlite.insert(PointsAccount).values(**values)
                              .on_conflict_do_update(index_elements=["user_id"],
                                                     set_={"updated_at": now}))
    else:
        await session.execute(mysql.insert(PointsAccount).values(**values)
                              .on_duplicate_key_update(updated_at=now))
    return (await session.execute(
        select(PointsAccount).where(PointsAccount.user_id == user_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one()


def _replay(existing: PointsEntry, delta: int, reason: str, adjustable: bool) -> Movement:
    """The first change made under a key, unless the key now names another change (409).
    `adjustable`: a floored or capped change, whose delta may differ from the one asked."""
    if existing.reason != reason or (existing.delta != delta and not adjustable):
        raise PointsKeyReused(errors=[field_error("key", "used for another change")])
    return _movement(existing, replayed=True)


def _movement(entry: PointsEntry, replayed: bool = False) -> Movement:
    shortfall = 0
    if entry.note.startswith("shortfall "):
        shortfall = int(entry.note.split()[1])
    return Movement(entry.id, entry.user_id, entry.delta, entry.balance_after, entry.reason,
                    replayed, shortfall)


async def earned_today(session: AsyncSession, user_id: int, reasons: tuple[str, ...],
                       now: dt.datetime | None = None) -> int:
    """Points earned today (Beijing day) for these reasons. Exact when called after
    `change()` took the lock, or inside a `change(daily_cap=...)`. Caller commits."""
    return int((await session.execute(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.user_id == user_id, PointsEntry.reason.in_(reasons),
            PointsEntry.created_at >= day_start(now or utcnow()))
        .with_for_update())).scalar_one())


async def change(session: AsyncSession, user_id: int, delta: int, *, reason: str, key: str,
                 ref_type: str = "", ref_id: object = "", note: str = "",
                 actor_id: int | None = None, expires_at: dt.datetime | None = None,
                 floor: bool = False, daily_cap: int = 0) -> Movement:
    """Move `user_id`'s points by `delta` (non-zero), once per `key` (unique per user).

    - A spend larger than the balance raises InsufficientPoints (422), unless `floor`: then
      the balance goes to zero and the part not taken is the Movement's `shortfall` (noted
      on the row) — for taking back points already spent.
    - `daily_cap` (> 0, for earnings): the delta is cut so today's earnings for this
      `reason` stay within the cap (possibly to 0: a row is still written, so a retry of
      the same key is a replay).

    Runs in the caller's transaction; the cached balance is dropped after its commit.
    Caller commits.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown points reason {reason!r}")
    if not key or len(key) > 128:
        raise ValueError("a points change needs an idempotency key of 1-128 characters")
    if delta == 0 and not daily_cap:
        raise ValueError("a points change moves at least one point")
    now = utcnow()
    account = await lock_account(session, user_id, now)
    existing = (await session.execute(select(PointsEntry).where(
        PointsEntry.user_id == user_id, PointsEntry.idem_key == key))).scalar_one_or_none()
    if existing is not None:
        return _replay(existing, delta, reason, floor or bool(daily_cap))
    wanted, shortfall = delta, 0
    if daily_cap and delta > 0:
        room = max(0, daily_cap - await earned_today(session, user_id, (reason,), now))
        if delta > room:
            delta = room
            note = note or f"capped at {daily_cap} a day"
    if account.balance + delta < 0:
        if not floor:
            raise InsufficientPoints(errors=[field_error(
                "points", f"needs {-delta}, the balance is {account.balance}")])
        delta, shortfall = -account.balance, -wanted - account.balance
        note = f"shortfall {shortfall}"
    balance = account.balance + delta
    entry = PointsEntry(user_id=user_id, delta=delta, balance_after=balance, reason=reason,
                        ref_type=ref_type, ref_id=str(ref_id)[:64], idem_key=key,
                        note=note[:255], actor_id=actor_id,
                        expires_at=expires_at if delta > 0 else None, created_at=now)
    try:
        async with session.begin_nested():
            session.add(entry)
            await session.flush()
    except IntegrityError:
        # The key's row committed after this transaction's snapshot began (a retry racing
        # the first attempt): now it exists, a locking read sees it.
        existing = (await session.execute(select(PointsEntry).where(
            PointsEntry.user_id == user_id, PointsEntry.idem_key == key)
            .with_for_update())).scalar_one_or_none()
        if existing is None:
            raise
        return _replay(existing, wanted, reason, floor or bool(daily_cap))
    await session.execute(
        update(PointsAccount).where(PointsAccount.user_id == user_id)
        .values(balance=balance, earned_total=PointsAccount.earned_total + max(delta, 0),
                spent_total=PointsAccount.spent_total + max(-delta, 0), updated_at=now)
        .execution_options(synchronize_session=False))
    cache.forget_after_commit(session, *balance_key(user_id))
    moved = Movement(entry.id, user_id, delta, balance, reason, False, shortfall)
    await points_changed.run(session, moved)
    return moved


async def balance_of(session: AsyncSession, user_id: int) -> int:
    """The balance as this transaction sees it (no lock). Caller commits."""
    found = (await session.execute(select(PointsAccount.balance).where(
        PointsAccount.user_id == user_id))).scalar_one_or_none()
    return int(found or 0)


async def ledger_total(session: AsyncSession, user_id: int, *, ref_type: str, ref_id: object,
                       reasons: tuple[str, ...]) -> int:
    """The sum of a user's ledger rows for one reference (an order) and these reasons."""
    return int((await session.execute(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.user_id == user_id, PointsEntry.ref_type == ref_type,
            PointsEntry.ref_id == str(ref_id), PointsEntry.reason.in_(reasons)))).scalar_one())


async def delta_of_key(session: AsyncSession, user_id: int, key: str) -> int:
    """The delta of the change made under `key` (0: none). Caller commits."""
    found = (await session.execute(select(PointsEntry.delta).where(
        PointsEntry.user_id == user_id, PointsEntry.idem_key == key))).scalar_one_or_none()
    return int(found or 0)


# -- reading --------------------------------------------------------------------------------------


def lapsing_by(movements: list[tuple[int, dt.datetime | None]], until: dt.datetime) -> int:
    """Of a ledger (delta, expires_at) in order, the points still held that lapse by `until`.
    Each deduction takes from the lots held then, the earliest-expiring first (points that
    never expire last)."""
    lots: list[list[Any]] = []  # [expires_at or None, points left]
    for delta, expires_at in movements:
        if delta > 0:
            lots.append([expires_at, delta])
            continue
        owed = -delta
        for lot in sorted(lots, key=lambda lot: (lot[0] is None, lot[0] or dt.datetime.max)):
            taken = min(owed, lot[1])
            lot[1] -= taken
            owed -= taken
            if not owed:
                break
        lots = [lot for lot in lots if lot[1]]
    return sum(points for expires_at, points in lots
               if expires_at is not None and expires_at <= until)


async def _expiring(session: AsyncSession, user_id: int, until: dt.datetime) -> int:
    rows = (await session.execute(select(PointsEntry.delta, PointsEntry.expires_at)
                                  .where(PointsEntry.user_id == user_id)
                                  .order_by(PointsEntry.id))).all()
    return lapsing_by([(int(delta), expires_at) for delta, expires_at in rows], until)


async def get_points(resources: Resources, user_id: int) -> dict[str, Any]:
    """GET /v1/points: the balance and what expires soon (cached per user, dropped after
    every change), with the payment rule (the rules' own cache). One Redis round trip when
    both are warm."""
    settings = resources.settings
    key = resources.cache.key(*balance_key(user_id))
    raw_balance, raw_rules = await resources.cache.redis.mget(
        key, resources.cache.key(*points_rules.CACHE_KEY))
    rules = await points_rules.cached(resources, raw_rules)
    if raw_balance is not None:
        view: dict[str, Any] = codec.loads(raw_balance)
    else:
        async with resources.db.session() as session:
            account = await session.get(PointsAccount, user_id)
            balance = account.balance if account else 0
            view = {"balance": balance,
                    "earned_total": account.earned_total if account else 0,
                    "spent_total": account.spent_total if account else 0,
                    "expiring_soon": 0, "expiring_before": None}
            if rules.expiry_days and balance:
                until = utcnow() + dt.timedelta(days=settings.points_expiring_window_days)
                view["expiring_soon"] = await _expiring(session, user_id, until)
                view["expiring_before"] = until.isoformat() + "Z"
        await resources.cache.redis.set(key, codec.dumps(view),
                                        ex=settings.points_balance_cache_seconds)
    return {**view, "expires": bool(rules.expiry_days),
            "payment": {"points_per_yuan": rules.payment_points_per_yuan,
                        "max_percent": rules.payment_max_percent}}


class LedgerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    cursor: str | None = Field(None, max_length=512)
    limit: int = Field(20, ge=1, le=MAX_LIMIT)
    direction: Literal["earned", "spent"] | None = Field(
        None, description="earned: additions only; spent: deductions only")


def entry_view(entry: PointsEntry) -> dict[str, Any]:
    return {"id": entry.id, "delta": entry.delta, "balance_after": entry.balance_after,
            "reason": entry.reason, "ref_type": entry.ref_type, "ref_id": entry.ref_id,
            "note": entry.note,
            "expires_at": entry.expires_at.isoformat() + "Z" if entry.expires_at else None,
            "created_at": entry.created_at.isoformat() + "Z"}


async def list_ledger(resources: Resources, user_id: int, query: LedgerQuery) -> dict[str, Any]:
    """The user's ledger, newest first, by cursor."""
    position = decode_cursor(query.cursor)
    conditions = [PointsEntry.user_id == user_id]
    if position is not None:
        before = position.get("before")
        if not isinstance(before, int) or isinstance(before, bool) or before < 1:
            raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")])
        conditions.append(PointsEntry.id < before)
    if query.direction == "earned":
        conditions.append(PointsEntry.delta > 0)
    elif query.direction == "spent":
        conditions.append(PointsEntry.delta < 0)
    async with resources.db.session() as session:
        rows = list((await session.execute(select(PointsEntry).where(*conditions)
                                           .order_by(PointsEntry.id.desc())
                                           .limit(query.limit + 1))).scalars())
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    return cursor_result([entry_view(e) for e in rows],
                         {"before": rows[-1].id} if more and rows else None)


async def admin_view(resources: Resources, user_id: int, query: LedgerQuery) -> dict[str, Any]:
    """A user's balance and ledger as an admin sees them (support, disputes)."""
    async with resources.db.session() as session:
        if await session.get(User, user_id) is None:
            raise NotFound("No such user")
    return {"user_id": user_id, "points": await get_points(resources, user_id),
            "ledger": await list_ledger(resources, user_id, query)}


# -- admin ----------------------------------------------------------------------------------------


class AdjustBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delta: int = Field(ge=-MAX_ADJUST, le=MAX_ADJUST,
                       description="points added (> 0) or taken (< 0); not 0")
    reason: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK,
                        description="why (shown in the user's ledger)")


async def admin_adjust(resources: Resources, user_id: int, body: AdjustBody, *, admin_id: int,
                       key: str) -> dict[str, Any]:
    """An admin adds or takes a user's points, with a reason, audited; `key` (the
    request's Idempotency-Key) makes a retried adjustment a replay."""
    if body.delta == 0:
        raise ValidationFailed(errors=[field_error("delta", "must not be 0")])
    async with resources.db.session() as session, session.begin():
        if await session.get(PointsAccount, user_id) is None \
                and await session.get(User, user_id) is None:
            raise NotFound("No such user")
        rules = await points_rules.load(session)
        moved = await change(session, user_id, body.delta, reason="admin_adjust",
                             key=f"admin_adjust:{admin_id}:{key}", ref_type="admin",
                             ref_id=admin_id, note=body.reason, actor_id=admin_id,
                             expires_at=rules.expires_at(utcnow()))
        if not moved.replayed:
            audit.record(session, actor_id=admin_id, actor_role="admin",
                         action="points.adjust", target_type="user", target_id=user_id,
                         before={"balance": moved.balance_after - moved.delta},
                         after={"balance": moved.balance_after, "delta": moved.delta,
                                "reason": body.reason})
    return {"user_id": user_id, **moved.view()}

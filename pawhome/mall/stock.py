"""SKU stock: the one module that moves `skus.stock`, each move a stock_movements row.

Stock is taken with a conditional UPDATE (`... SET stock = stock - n WHERE stock >= n`), so
two buyers of the last unit cannot both get it and stock never goes below zero (a CHECK
constraint backs this up). Several SKUs are always locked in ascending id order, so two
checkouts of the same SKUs in opposite order queue behind each other instead of deadlocking.
Every function here is a building block: Caller commits, and after the commit drops the
cached product pages (pawhome/mall/products.py) since the stock they show changed.

Stock -1 means unlimited (virtual goods): taking or giving back leaves it at -1 and writes no
ledger row (nothing moved); only a merchant's adjustment to a number ends it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import Sku, StockMovement

REASONS = ("initial", "adjust", "order_placed", "order_cancelled", "refund_restock")
UNLIMITED = -1


@dataclass(frozen=True)
class StockMove:
    sku_id: int
    quantity: int  # > 0: the amount taken or returned


@dataclass(frozen=True)
class Shortage:
    sku_id: int
    wanted: int
    available: int  # 0 for a SKU that is gone (deleted)


def _merged(moves: Iterable[StockMove]) -> list[StockMove]:
    """One move per SKU (two lines of one SKU take their sum), in ascending SKU id order."""
    totals: dict[int, int] = {}
    for move in moves:
        if move.quantity <= 0:
            raise ValueError(f"stock moves are positive quantities, got {move.quantity}")
        totals[move.sku_id] = totals.get(move.sku_id, 0) + move.quantity
    return [StockMove(sku_id, totals[sku_id]) for sku_id in sorted(totals)]


async def _stock_of(session: AsyncSession, sku_id: int) -> int:
    return int((await session.execute(select(Sku.stock).where(Sku.id == sku_id))).scalar_one())


def _ledger(session: AsyncSession, sku_id: int, delta: int, stock_after: int, reason: str,
            ref_type: str, ref_id: int | None, actor_id: int | None, note: str) -> None:
    if reason not in REASONS:
        raise ValueError(f"unknown stock movement reason {reason!r}")
    session.add(StockMovement(sku_id=sku_id, delta=delta, stock_after=stock_after,
                              reason=reason, ref_type=ref_type, ref_id=ref_id,
                              actor_id=actor_id, note=note))


async def take(session: AsyncSession, moves: Iterable[StockMove], *, reason: str,
               ref_type: str = "", ref_id: int | None = None, actor_id: int | None = None,
               note: str = "") -> list[Shortage]:
    """Take every move's quantity, or nothing: returns the shortages (empty when all was
    taken). On a shortage some SKUs may already be decremented in this transaction, so the
    caller must roll back (raise) when the list is not empty. Caller commits."""
    shortages: list[Shortage] = []
    taken: list[tuple[int, int]] = []
    for move in _merged(moves):
        result = await session.execute(
            update(Sku).where(Sku.id == move.sku_id, Sku.deleted_at.is_(None),
                              or_(Sku.stock == UNLIMITED, Sku.stock >= move.quantity))
            .values(stock=case((Sku.stock == UNLIMITED, UNLIMITED),
                               else_=Sku.stock - move.quantity))
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:  # type: ignore[attr-defined]
            taken.append((move.sku_id, move.quantity))
            continue
        available = (await session.execute(select(Sku.stock).where(
            Sku.id == move.sku_id, Sku.deleted_at.is_(None)))).scalar_one_or_none()
        shortages.append(Shortage(move.sku_id, move.quantity, int(available or 0)))
    if shortages:
        return shortages
    for sku_id, quantity in taken:
        after = await _stock_of(session, sku_id)
        if after != UNLIMITED:
            _ledger(session, sku_id, -quantity, after, reason, ref_type, ref_id, actor_id, note)
    return []


async def give_back(session: AsyncSession, moves: Iterable[StockMove], *, reason: str,
                    ref_type: str = "", ref_id: int | None = None, actor_id: int | None = None,
                    note: str = "") -> None:
    """Return stock (a cancelled order, a refund before shipping). Exactly-once is the
    caller's state machine's job: it calls this only on the transition that frees the
    stock. A deleted SKU gets its stock back too (harmless; it cannot be bought). Caller
    commits."""
    for move in _merged(moves):
        result = await session.execute(
            update(Sku).where(Sku.id == move.sku_id, Sku.stock != UNLIMITED)
            .values(stock=Sku.stock + move.quantity)
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:  # type: ignore[attr-defined]
            _ledger(session, move.sku_id, move.quantity, await _stock_of(session, move.sku_id),
                    reason, ref_type, ref_id, actor_id, note)


async def adjust(session: AsyncSession, sku_id: int, delta: int, *, actor_id: int | None,
                 note: str, reason: str = "adjust") -> int | None:
    """A merchant's correction (a count, damaged goods, a restock): moves stock by `delta`
    unless that would take it below zero. Returns the new stock, or None when refused (and
    always for unlimited stock, which has nothing to adjust). Caller commits."""
    if delta == 0:
        return await _stock_of(session, sku_id)
    condition = [Sku.id == sku_id, Sku.stock != UNLIMITED]
    if delta < 0:
        condition.append(Sku.stock >= -delta)
    result = await session.execute(update(Sku).where(*condition)
                                   .values(stock=Sku.stock + delta)
                                   .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    after = await _stock_of(session, sku_id)
    _ledger(session, sku_id, delta, after, reason, "", None, actor_id, note)
    return after

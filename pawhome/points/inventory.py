"""The inventory: the virtual items a user holds (virtual pet food, toys, accessories),
bought in the points mall and used by the virtual pet (issue 13).

An order's virtual lines are delivered the moment it is paid (the mall's `order_paid` hook,
in the mall's transaction): each line is granted once (keyed by the order line), and an
order of virtual goods only then completes at once through its own transition
(`deliver_virtual`, pawhome/mall/order_states.py). `consume()` is what the virtual pet calls
to use an item: once per key, never below zero (InsufficientInventory, 422). Every change is
an inventory_movements row. docs/points.md ("Inventory and virtual goods").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import VIRTUAL_KINDS, Order, Product
from models.points import InventoryItem, InventoryMovement
from pawhome.mall import order_hooks, order_states, orders
from pawhome.platform.errors import InsufficientInventory, PointsKeyReused, field_error
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

VirtualKind = Literal["virtual_pet_food", "virtual_pet_toy", "virtual_pet_accessory"]
assert set(VirtualKind.__args__) == set(VIRTUAL_KINDS)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class InventoryChange:
    sku_id: int
    delta: int
    quantity: int  # held after the change
    replayed: bool = False


@dataclass(frozen=True)
class Goods:
    """What a granted item is (snapshotted on the inventory row)."""
    sku_id: int
    product_id: int
    kind: str
    name: str
    spec_text: str = ""
    image_url: str = ""


async def _locked(session: AsyncSession, user_id: int, sku_id: int) -> InventoryItem | None:
    return (await session.execute(
        select(InventoryItem).where(InventoryItem.user_id == user_id,
                                    InventoryItem.sku_id == sku_id)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()


def _check_replay(done: InventoryMovement, sku_id: int, delta: int) -> InventoryChange:
    if done.sku_id != sku_id or done.delta != delta:
        raise PointsKeyReused(errors=[field_error("key", "used for another inventory change")])
    return InventoryChange(sku_id, delta, done.quantity_after, replayed=True)


async def _done(session: AsyncSession, user_id: int, key: str,
                locking: bool = False) -> InventoryMovement | None:
    statement = select(InventoryMovement).where(InventoryMovement.user_id == user_id,
                                                InventoryMovement.idem_key == key)
    if locking:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def _move(session: AsyncSession, item: InventoryItem, user_id: int, sku_id: int,
                delta: int, *, key: str, reason: str, ref_type: str,
                ref_id: object) -> InventoryChange:
    """Write the movement (the unique key decides a racing retry, as in the points ledger),
    then the held quantity. The item row is locked by the caller."""
    after = item.quantity + delta
    try:
        async with session.begin_nested():
            session.add(InventoryMovement(user_id=user_id, sku_id=sku_id, delta=delta,
                                          quantity_after=after, reason=reason,
                                          ref_type=ref_type, ref_id=str(ref_id)[:64],
                                          idem_key=key))
            await session.flush()
    except IntegrityError:
        done = await _done(session, user_id, key, locking=True)
        if done is None:
            raise
        return _check_replay(done, sku_id, delta)
    item.quantity = after
    await session.flush()
    return InventoryChange(sku_id, delta, after)


async def grant(session: AsyncSession, user_id: int, goods: Goods, quantity: int, *, key: str,
                reason: str = "order_fulfilled", ref_type: str = "", ref_id: object = ""
                ) -> InventoryChange:
    """Add `quantity` of an item to the user's inventory, once per `key`. Caller commits."""
    if quantity <= 0:
        raise ValueError("a grant adds at least one item")
    now = utcnow()
    values = {"user_id": user_id, "sku_id": goods.sku_id, "product_id": goods.product_id,
              "kind": goods.kind, "name": goods.name, "spec_text": goods.spec_text,
              "image_url": goods.image_url, "quantity": 0, "updated_at": now}
    # Create the row if needed and take its lock at once (see pawhome/points/ledger.py).
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(sqlite.insert(InventoryItem).values(**values)
                              .on_conflict_do_update(index_elements=["user_id", "sku_id"],
                                                     set_={"updated_at": now}))
    else:
        await session.execute(mysql.insert(InventoryItem).values(**values)
                              .on_duplicate_key_update(updated_at=now))
    item = await _locked(session, user_id, goods.sku_id)
    assert item is not None
    done = await _done(session, user_id, key)
    if done is not None:
        return _check_replay(done, goods.sku_id, quantity)
    item.name, item.image_url = goods.name, goods.image_url or item.image_url
    return await _move(session, item, user_id, goods.sku_id, quantity, key=key, reason=reason,
                       ref_type=ref_type, ref_id=ref_id)


async def consume(session: AsyncSession, user_id: int, sku_id: int, quantity: int = 1, *,
                  key: str, reason: str = "consumed", ref_type: str = "",
                  ref_id: object = "", locked: InventoryItem | None = None) -> InventoryChange:
    """Use `quantity` of an item (the virtual pet feeds or plays with it), once per `key`:
    InsufficientInventory (422) when the user holds fewer, and nothing changes. `locked`: the
    item row the caller locked already with `locked_item`. Caller commits (the pet's change
    and the item's use commit together)."""
    if quantity <= 0:
        raise ValueError("a use takes at least one item")
    item = locked if locked is not None else await _locked(session, user_id, sku_id)
    done = await _done(session, user_id, key)
    if done is not None:
        return _check_replay(done, sku_id, -quantity)
    held = item.quantity if item else 0
    if item is None or held < quantity:
        raise InsufficientInventory(errors=[field_error(
            "quantity", f"needs {quantity}, {held} held")])
    return await _move(session, item, user_id, sku_id, -quantity, key=key, reason=reason,
                       ref_type=ref_type, ref_id=ref_id)


async def locked_item(session: AsyncSession, user_id: int,
                      sku_id: int) -> InventoryItem | None:
    """The user's row of an item (kind, quantity held), locked until the caller commits, or
    None when they never had it. Pass it to `consume` to use some."""
    return await _locked(session, user_id, sku_id)


async def held(session: AsyncSession, user_id: int, sku_id: int) -> int:
    """How many of an item the user holds (no lock). Caller commits."""
    found = (await session.execute(select(InventoryItem.quantity).where(
        InventoryItem.user_id == user_id, InventoryItem.sku_id == sku_id))).scalar_one_or_none()
    return int(found or 0)


class InventoryQuery(PageQuery):
    kind: VirtualKind | None = None


def _view(item: InventoryItem) -> dict[str, Any]:
    return {"sku_id": item.sku_id, "product_id": item.product_id, "kind": item.kind,
            "name": item.name, "spec_text": item.spec_text, "image_url": item.image_url,
            "quantity": item.quantity, "updated_at": item.updated_at.isoformat() + "Z"}


async def list_inventory(resources: Resources, user_id: int,
                         query: InventoryQuery) -> dict[str, Any]:
    """The items the user holds (quantity > 0), most recently changed first."""
    conditions = [InventoryItem.user_id == user_id, InventoryItem.quantity > 0]
    if query.kind:
        conditions.append(InventoryItem.kind == query.kind)
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count()).select_from(InventoryItem)
                                           .where(*conditions))).scalar_one())
        rows = (await session.execute(
            select(InventoryItem).where(*conditions)
            .order_by(InventoryItem.updated_at.desc(), InventoryItem.sku_id)
            .offset(query.offset).limit(query.limit))).scalars()
        items = [_view(item) for item in rows]
    return page_result(items, total, query)


# -- delivery of virtual goods ------------------------------------------------------------------


@order_hooks.order_paid.connect
async def deliver_virtual_goods(session: AsyncSession, order: Order) -> None:
    """A paid order's virtual lines go into the buyer's inventory (once per line); an order
    of virtual goods only (fulfilment "virtual") then completes at once."""
    items = await orders.items_of(session, order.id)
    kinds = dict((await session.execute(select(Product.id, Product.kind).where(
        Product.id.in_({i.product_id for i in items})))).all())
    for item in items:
        kind = kinds.get(item.product_id, "physical")
        if kind not in VIRTUAL_KINDS:
            continue
        await grant(session, order.user_id,
                    Goods(item.sku_id, item.product_id, kind, item.name, item.spec_text,
                          item.image_url),
                    item.quantity, key=f"order_item:{item.id}", ref_type="order",
                    ref_id=order.id)
    if order.fulfilment == "virtual":
        order_states.transition(session, order, "deliver_virtual", actor_type="system",
                                actor_id=None, reason="delivered to the inventory")
        await orders.completed(session, order)

"""Group-buy (拼团): a SKU's rule, the groups opened under it and their members — the one
module that writes the group-buy tables and sends `group.progress`. docs/promotions.md
("Group-buy").

The states, in one place (every move writes a group_buy_events row):

    group   opening ──opener pays──▶ open ──last seat paid──▶ filled
               │                       └──time runs out──▶ expired
               └──opener's order cancelled unpaid──▶ failed
    member  pending ──pays──▶ paid ──group expired/failed──▶ refunding ──▶ refunded
               └──order cancelled──▶ cancelled

A member's order goes pending_payment → paid → paid_waiting_group while its group is open,
and back to paid (`group_filled`) when the last seat is paid; the member paying the last
seat never waits. **Seats are taken at order placement** under the group's row lock (SELECT
... FOR UPDATE): an unpaid member holds its seat until its order is paid or cancelled, so
the seats of a group never exceed its size and every seat paid for is a member. A payment
that arrives for a group that can no longer take it (expired, failed) is refunded in full
through the refund flow, in the payment's own transaction. Lock order, everywhere: the
order, its SKUs (stock, sales), the rule, the group, then other members' orders — which
are all paid already, so nobody holding one waits for the group.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.groupbuy import GroupBuy, GroupBuyEvent, GroupBuyMember, GroupBuyRule
from models.mall import Order, Product, Sku
from models.users import User
from pawhome.mall import order_states, orders, refunds
from pawhome.mall.product_rendering import cards
from pawhome.messaging import chat, notifications
from pawhome.platform import audit, events, outbox, topics
from pawhome.platform.errors import (
    AppError,
    GroupBuyRuleExists,
    GroupBuyTermsInvalid,
    NotFound,
    field_error,
)
from pawhome.platform.fields import Id
from pawhome.platform.pagination import MAX_LIMIT, PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.promotions import home
from settings import Settings

log = logging.getLogger("pawhome.groupbuy")

EXPIRE_TASK = "default.expire_group_buy"
SWEEP_BATCH = 200
LIVE_MEMBERS = ("pending", "paid")  # members holding a seat (and counting to the limit)

# action -> (states it may start from, state it leads to)
GROUP_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "open": (frozenset({"opening"}), "open"),
    "fill": (frozenset({"open"}), "filled"),
    "expire": (frozenset({"open"}), "expired"),
    "fail": (frozenset({"opening"}), "failed"),
}
MEMBER_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "join": (frozenset({""}), "pending"),
    "pay": (frozenset({"pending"}), "paid"),
    "cancel": (frozenset({"pending"}), "cancelled"),
    "refund": (frozenset({"paid"}), "refunding"),
    "refunded": (frozenset({"paid", "refunding"}), "refunded"),
}
CLOSED = ("filled", "expired", "failed")


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku_id: Id
    group_size: int = Field(ge=2, le=50)
    group_price: int = Field(ge=1, le=10**9, description="fen per unit, below the SKU's price")
    time_limit_minutes: int = Field(1440, ge=10, le=7 * 1440,
                                    description="time to fill once opened (default 24 h)")
    limit_per_user: int = Field(1, ge=1, le=99,
                                description="units one buyer may hold in live groups")


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_size: int | None = Field(None, ge=2, le=50)
    group_price: int | None = Field(None, ge=1, le=10**9)
    time_limit_minutes: int | None = Field(None, ge=10, le=7 * 1440)
    limit_per_user: int | None = Field(None, ge=1, le=99)
    status: Literal["active", "stopped"] | None = None


class RuleListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(10, ge=1, le=MAX_LIMIT)


class ProductGroupsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    product_id: Id


RULE_REFUSALS = {"sku_id": "an on-sale physical SKU of the caller's shop (admins: any)",
                 "group_price": "below the SKU's price"}


class GroupProgressEvent(BaseModel):
    """`group.progress` on `group:<id>`: a group's seats or state changed."""
    model_config = ConfigDict(extra="forbid")
    group_id: int
    status: Literal["opening", "open", "filled", "expired", "failed"]
    size: int
    paid_count: int
    seats_taken: int
    seats_left: int
    expires_at: str | None
    action: str
    at: str


events.register_event_schema("group.progress", GroupProgressEvent)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


# -- rules ---------------------------------------------------------------------------------------


def rule_view(rule: GroupBuyRule) -> dict[str, Any]:
    return {"id": rule.id, "sku_id": rule.sku_id, "product_id": rule.product_id,
            "merchant_id": rule.merchant_id, "group_size": rule.group_size,
            "group_price": rule.group_price, "time_limit_minutes": rule.time_limit_minutes,
            "limit_per_user": rule.limit_per_user, "status": rule.status,
            "created_at": rule.created_at, "updated_at": rule.updated_at}


async def _check_terms(session: AsyncSession, sku: Sku, group_price: int) -> None:
    if group_price >= sku.price:
        raise GroupBuyTermsInvalid(errors=[field_error(
            "group_price", f"must be below the SKU's price ({sku.price} fen)")])


async def create_rule(resources: Resources, user_id: int, role: str,
                      body: RuleBody) -> dict[str, Any]:
    """A SKU's group-buy rule, by its shop (or an admin). One rule per SKU (409 otherwise);
    virtual goods are not sold by group-buy."""
    async with resources.db.session() as session, session.begin():
        sku = await session.get(Sku, body.sku_id)
        product = await session.get(Product, sku.product_id) if sku else None
        if sku is None or product is None or sku.deleted_at is not None \
                or product.deleted_at is not None \
                or (role != "admin" and product.merchant_id != user_id):
            raise NotFound("No such SKU")
        if product.kind != "physical":
            raise GroupBuyTermsInvalid(errors=[field_error(
                "sku_id", "virtual goods are not sold by group-buy")])
        await _check_terms(session, sku, body.group_price)
        existing = (await session.execute(select(GroupBuyRule.id).where(
            GroupBuyRule.sku_id == sku.id).with_for_update())).scalar_one_or_none()
        if existing is not None:
            raise GroupBuyRuleExists(errors=[field_error("sku_id", f"rule {existing}")])
        rule = GroupBuyRule(sku_id=sku.id, product_id=product.id,
                            merchant_id=product.merchant_id, group_size=body.group_size,
                            group_price=body.group_price,
                            time_limit_minutes=body.time_limit_minutes,
                            limit_per_user=body.limit_per_user, created_by=user_id)
        session.add(rule)
        await session.flush()
        audit.record(session, actor_id=user_id, actor_role=role, action="group_buy_rule.create",
                     target_type="group_buy_rule", target_id=rule.id, before=None,
                     after=body.model_dump())
        view = rule_view(rule)
    await home.forget_home(resources)  # the home's group-buy slot may fall back to it
    return view


async def _own_rule(session: AsyncSession, user_id: int, role: str,
                    rule_id: int) -> GroupBuyRule:
    rule = (await session.execute(select(GroupBuyRule).where(GroupBuyRule.id == rule_id)
                                  .with_for_update())).scalar_one_or_none()
    if rule is None or (role != "admin" and rule.merchant_id != user_id):
        raise NotFound("No such group-buy rule")
    return rule


async def update_rule(resources: Resources, user_id: int, role: str, rule_id: int,
                      body: RulePatch) -> dict[str, Any]:
    """Change a rule's terms or stop/restart it. Groups already opened keep the terms they
    were opened with; a stopped rule opens and joins no group (open ones run their course)."""
    async with resources.db.session() as session, session.begin():
        rule = await _own_rule(session, user_id, role, rule_id)
        before = rule_view(rule)
        changes = body.model_dump(exclude_none=True)
        if "group_price" in changes:
            sku = await session.get(Sku, rule.sku_id)
            assert sku is not None
            await _check_terms(session, sku, changes["group_price"])
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.updated_at = utcnow()
        audit.record(session, actor_id=user_id, actor_role=role, action="group_buy_rule.update",
                     target_type="group_buy_rule", target_id=rule.id,
                     before={k: before[k] for k in changes}, after=changes)
        view = rule_view(rule)
    await home.forget_home(resources)
    return view


async def list_rules(resources: Resources, user_id: int, role: str,
                     query: RuleListQuery) -> dict[str, Any]:
    """The caller's shop's rules (admins: every one), newest first."""
    where = [] if role == "admin" else [GroupBuyRule.merchant_id == user_id]
    paging = PageQuery(page=query.page, limit=query.limit)
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count()).select_from(GroupBuyRule)
                                           .where(*where))).scalar_one())
        rows = (await session.execute(select(GroupBuyRule).where(*where)
                                      .order_by(GroupBuyRule.id.desc())
                                      .offset(paging.offset).limit(paging.limit))).scalars()
        return page_result([rule_view(r) for r in rows], total, paging)


async def active_rule(session: AsyncSession, sku_id: int, *,
                      lock: bool = False) -> GroupBuyRule | None:
    statement = select(GroupBuyRule).where(GroupBuyRule.sku_id == sku_id,
                                           GroupBuyRule.status == "active")
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


async def units_held(session: AsyncSession, user_id: int, rule_id: int, *,
                     lock: bool = False) -> int:
    """Units the user holds under a rule in live memberships (pending or paid). `lock`: a
    locking read, which sees what committed after this transaction's snapshot."""
    statement = select(GroupBuyMember.quantity).where(
        GroupBuyMember.user_id == user_id, GroupBuyMember.rule_id == rule_id,
        GroupBuyMember.status.in_(LIVE_MEMBERS))
    if lock:
        statement = statement.with_for_update()
    return sum((await session.execute(statement)).scalars())


async def member_in_group(session: AsyncSession, group_id: int, user_id: int, *,
                          lock: bool = False) -> bool:
    """Whether the user holds a seat (pending or paid) in the group."""
    statement = select(GroupBuyMember.id).where(
        GroupBuyMember.group_id == group_id, GroupBuyMember.user_id == user_id,
        GroupBuyMember.status.in_(LIVE_MEMBERS))
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).first() is not None


# -- the state machine ------------------------------------------------------------------------


def _record(session: AsyncSession, group: GroupBuy, action: str, previous: str, target: str,
            member: GroupBuyMember | None = None) -> None:
    session.add(GroupBuyEvent(group_id=group.id, action=action, from_status=previous,
                              to_status=target, member_id=member.id if member else None,
                              order_id=member.order_id if member else None,
                              created_at=utcnow()))


def move_group(session: AsyncSession, group: GroupBuy, action: str) -> None:
    """Apply a group transition to a locked group (recorded, `group.progress` sent).
    Caller commits."""
    sources, target = GROUP_TRANSITIONS[action]
    if group.status not in sources:
        raise ValueError(f"cannot {action} a group that is {group.status}")
    previous, now = group.status, utcnow()
    group.status, group.updated_at = target, now
    if target in CLOSED:
        group.closed_at = now
    _record(session, group, action, previous, target)
    publish_progress(session, group, action)


def move_member(session: AsyncSession, group: GroupBuy, member: GroupBuyMember,
                action: str) -> None:
    """Apply a member transition (recorded). Caller commits."""
    sources, target = MEMBER_TRANSITIONS[action]
    previous = member.status
    if previous not in sources:
        raise ValueError(f"cannot {action} a member that is {member.status}")
    member.status, member.updated_at = target, utcnow()
    _record(session, group, f"member_{action}", previous, target, member)


def progress_data(group: GroupBuy, action: str) -> dict[str, Any]:
    return {"group_id": group.id, "status": group.status, "size": group.size,
            "paid_count": group.paid_count, "seats_taken": group.seats_taken,
            "seats_left": group.size - group.seats_taken, "expires_at": _iso(group.expires_at),
            "action": action, "at": _iso(utcnow())}


def publish_progress(session: AsyncSession, group: GroupBuy, action: str) -> None:
    """`group.progress` to whoever watches `group:<id>` (members and viewers of the group
    page), after commit through the outbox."""
    events.emit_to_topic(session, f"group:{group.id}", "group.progress",
                         progress_data(group, action))


async def lock_group(session: AsyncSession, group_id: int) -> GroupBuy | None:
    return (await session.execute(select(GroupBuy).where(GroupBuy.id == group_id)
                                  .with_for_update()
                                  .execution_options(populate_existing=True))).scalar_one_or_none()


async def member_of_order(session: AsyncSession, order_id: int, *,
                          lock: bool = False) -> GroupBuyMember | None:
    statement = select(GroupBuyMember).where(GroupBuyMember.order_id == order_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


async def _tell(session: AsyncSession, user_id: int, group: GroupBuy, order_id: int,
                kind: str, title: str, text: str) -> None:
    """A member's notification (and, through it, the WeChat subscribe message)."""
    await notifications.notify(session, user_id, "order", kind, target_type="order",
                               target_id=order_id,
                               payload={"title": title, "text": text, "group_id": group.id})


async def _members(session: AsyncSession, group_id: int, *statuses: str) -> list[GroupBuyMember]:
    """The group's members in `statuses`, by a locking read: under the group's lock it sees
    every member move committed meanwhile (a plain read would see this transaction's older
    snapshot, missing a member paid just before)."""
    return list((await session.execute(
        select(GroupBuyMember).where(GroupBuyMember.group_id == group_id,
                                     GroupBuyMember.status.in_(statuses))
        .order_by(GroupBuyMember.order_id).with_for_update()
        .execution_options(populate_existing=True))).scalars())


async def _locked_member(session: AsyncSession,
                         order_id: int) -> tuple[GroupBuy, GroupBuyMember] | None:
    """The group and the member of a group-buy order, both row-locked in the house's order
    (the group, then the member, read fresh), or None for an order of no group."""
    found = await member_of_order(session, order_id)
    if found is None:
        return None
    group = await lock_group(session, found.group_id)
    member = await member_of_order(session, order_id, lock=True)
    assert group is not None and member is not None
    return group, member


async def member_paid(session: AsyncSession, order: Order) -> None:
    """A member's order took its payment (the order_paid hook; the order is locked and now
    `paid`). In time: the member is paid into the group — its order waits
    (paid_waiting_group), or, paying the last seat, fills the group and every waiting order
    proceeds. Too late (the group expired or failed): the payment goes straight back through
    the refund flow. Caller commits."""
    locked = await _locked_member(session, order.id)
    if locked is None or locked[1].status != "pending":
        return
    group, member = locked
    now = utcnow()
    move_member(session, group, member, "pay")
    member.paid_at = now
    if group.status == "opening" and member.is_opener:
        group.opened_at = now
        group.expires_at = now + dt.timedelta(minutes=group.time_limit_minutes)
        group.paid_count += 1
        move_group(session, group, "open")
        outbox.enqueue_task(session, EXPIRE_TASK, group.id,
                            countdown=group.time_limit_minutes * 60 + 1)
        order_states.transition(session, order, "wait_for_group", actor_type="system",
                                actor_id=None, reason=f"group {group.id} opened")
        await _tell(session, order.user_id, group, order.id, "group_buy_opened", "开团成功",
                    f"还差 {group.size - group.paid_count} 人成团，快分享给好友吧")
        return
    if group.status != "open" or group.expires_at is None or group.expires_at <= now \
            or group.paid_count >= group.size:
        # Paid after the group closed: never a member beyond its time or size (seats are
        # taken at placement, so a full group here would be a bug: refunded all the same).
        order_states.transition(session, order, "wait_for_group", actor_type="system",
                                actor_id=None, reason=f"group {group.id} is {group.status}")
        await refund_member(session, group, member, order, "拼团已结束，自动退款")
        return
    group.paid_count += 1
    if group.paid_count < group.size:
        order_states.transition(session, order, "wait_for_group", actor_type="system",
                                actor_id=None, reason=f"group {group.id}")
        publish_progress(session, group, "member_paid")
        await _tell(session, order.user_id, group, order.id, "group_buy_joined", "参团成功",
                    f"还差 {group.size - group.paid_count} 人成团")
        return
    move_group(session, group, "fill")
    waiting = [m for m in await _members(session, group.id, "paid") if m.id != member.id]
    for other in waiting:
        other_order = await orders.lock_order(session, other.order_id)
        if other_order.status == "paid_waiting_group":
            order_states.transition(session, other_order, "group_filled", actor_type="system",
                                    actor_id=None, reason=f"group {group.id} filled")
    for told in sorted([member, *waiting], key=lambda m: m.user_id):  # notify() locks users
        await _tell(session, told.user_id, group, told.order_id, "group_buy_filled",
                    "拼团成功", "拼团成功，商家将尽快发货")


async def refund_member(session: AsyncSession, group: GroupBuy, member: GroupBuyMember,
                        order: Order, why: str) -> None:
    """A paid member of a group that did not fill gets everything back through the refund
    flow (WeChat Pay refund; lines refunded and stock back when it settles). The order is
    locked and paid_waiting_group. Caller commits."""
    move_member(session, group, member, "refund")
    await refunds.refund_in_full(session, order, reason=why)
    await _tell(session, member.user_id, group, order.id, "group_buy_failed", "拼团失败", why)


async def member_cancelled(session: AsyncSession, order: Order) -> None:
    """An unpaid member's order was cancelled (buyer, timeout, admin, the group expired):
    its seat is freed; the opener's cancelled order fails its group. Caller commits."""
    locked = await _locked_member(session, order.id)
    if locked is None or locked[1].status != "pending":
        return
    group, member = locked
    move_member(session, group, member, "cancel")
    group.seats_taken -= 1
    group.updated_at = utcnow()
    if member.is_opener and group.status == "opening":
        move_group(session, group, "fail")
    else:
        publish_progress(session, group, "member_left")


async def member_refunded(session: AsyncSession, order: Order, whole: bool) -> None:
    """An order refunded in full: its member (refunding after the group closed, or paid: an
    admin's refund of a waiting order, a filled group's after-sale) is refunded and no
    longer counts to the buyer's limit. A member refunded while its group is still open
    leaves it: the seat is free again, so the group fills only with members who paid and
    kept their money in. Caller commits."""
    if not whole:
        return
    locked = await _locked_member(session, order.id)
    if locked is None or locked[1].status not in MEMBER_TRANSITIONS["refunded"][0]:
        return
    group, member = locked
    leaves = member.status == "paid" and group.status == "open"
    move_member(session, group, member, "refunded")
    if leaves:
        group.paid_count -= 1
        group.seats_taken -= 1
        group.updated_at = utcnow()
        publish_progress(session, group, "member_left")


# -- expiry ---------------------------------------------------------------------------------------


async def expire_group(resources: Resources, group_id: int) -> dict[str, int]:
    """Close a group whose time ran out (the delayed task queued when it opened, or the
    sweep) and settle its members: each paid member's order is refunded in full, each unpaid
    member's order cancelled (stock back). Idempotent: a filled group, or members already
    settled, are left alone. Returns what was done."""
    async with resources.db.session() as session, session.begin():
        group = await lock_group(session, group_id)
        if group is None:
            return {"refunded": 0, "cancelled": 0}
        if group.status == "open" and group.expires_at is not None \
                and group.expires_at <= utcnow():
            move_group(session, group, "expire")
        if group.status not in ("expired", "failed"):
            return {"refunded": 0, "cancelled": 0}
        settle = [(m.order_id, m.status) for m in await _members(session, group.id,
                                                                 "pending", "paid")]
    done = {"refunded": 0, "cancelled": 0}
    for order_id, status in settle:
        if status == "pending":
            result = await orders.cancel_order(resources, order_id, actor_type="system",
                                               actor_id=None, reason="拼团未成功",
                                               if_unpaid=True)
            done["cancelled"] += result is not None
            continue
        try:
            done["refunded"] += await _refund_after_expiry(resources, group_id, order_id)
        except AppError:  # one member's refund refused: the others still go; the sweep retries
            log.exception("group %s: refunding order %s failed", group_id, order_id)
            done["failed"] = done.get("failed", 0) + 1
    return done


async def _refund_after_expiry(resources: Resources, group_id: int, order_id: int) -> int:
    """Refund one paid member of a closed group (1), or nothing if settled meanwhile (0)."""
    async with resources.db.session() as session, session.begin():
        order = await orders.lock_order(session, order_id)
        group = await lock_group(session, group_id)
        member = await member_of_order(session, order_id, lock=True)
        assert group is not None and member is not None
        if member.status != "paid" or order.status != "paid_waiting_group":
            return 0
        await refund_member(session, group, member, order, "拼团未成功，自动退款")
        return 1


async def expire_due(resources: Resources, limit: int = SWEEP_BATCH) -> int:
    """The sweep behind each group's expiry task (beat): open groups past their time, and
    closed ones with members still to settle (a lost task, a payment after the close).
    Returns how many groups it settled."""
    now = utcnow()
    async with resources.db.session() as session:
        due = list((await session.execute(
            select(GroupBuy.id).where(GroupBuy.status == "open", GroupBuy.expires_at < now)
            .order_by(GroupBuy.expires_at).limit(limit))).scalars())
        left = list((await session.execute(
            select(GroupBuyMember.group_id).join(GroupBuy, GroupBuy.id == GroupBuyMember.group_id)
            .where(GroupBuy.status.in_(("expired", "failed")),
                   GroupBuyMember.status == "paid")
            .group_by(GroupBuyMember.group_id).limit(limit))).scalars())
    for group_id in sorted(set(due) | set(left)):
        await expire_group(resources, group_id)
    return len(set(due) | set(left))


# -- reading --------------------------------------------------------------------------------------


async def _people(session: AsyncSession, user_ids: set[int]) -> dict[int, dict[str, Any]]:
    if not user_ids:
        return {}
    rows = (await session.execute(select(User.id, User.nickname, User.avatar_url)
                                  .where(User.id.in_(user_ids)))).all()
    return {int(r[0]): {"id": int(r[0]), "nickname": r[1], "avatar_url": r[2]} for r in rows}


async def _views(session: AsyncSession, groups: list[GroupBuy], viewer_id: int | None,
                 settings: Settings | None = None) -> list[dict[str, Any]]:
    """Groups as shown; with `settings`, each with its product's card (name, cover, price)."""
    ids = [g.id for g in groups]
    products: dict[int, dict[str, Any]] = {}
    if settings is not None and groups:
        rows = list((await session.execute(select(Product).where(
            Product.id.in_({g.product_id for g in groups})))).scalars())
        products = {c["id"]: c for c in await cards(session, settings, rows)}
    members = list((await session.execute(
        select(GroupBuyMember).where(GroupBuyMember.group_id.in_(ids),
                                     GroupBuyMember.status.in_(LIVE_MEMBERS))
        .order_by(GroupBuyMember.id))).scalars()) if ids else []
    people = await _people(session, {m.user_id for m in members} | {g.opener_id for g in groups})
    out = []
    for group in groups:
        mine = [m for m in members if m.group_id == group.id]
        out.append({
            "id": group.id, "rule_id": group.rule_id, "sku_id": group.sku_id,
            "product_id": group.product_id, "merchant_id": group.merchant_id,
            "opener": people.get(group.opener_id), "size": group.size,
            "group_price": group.group_price, "status": group.status,
            "paid_count": group.paid_count, "seats_taken": group.seats_taken,
            "seats_left": group.size - group.seats_taken,
            "expires_at": group.expires_at, "opened_at": group.opened_at,
            "closed_at": group.closed_at, "topic": f"group:{group.id}",
            "members": [{**people.get(m.user_id, {"id": m.user_id, "nickname": "",
                                                  "avatar_url": ""}),
                         "is_opener": m.is_opener, "paid": m.status == "paid"}
                        for m in mine if m.status == "paid"],
            "joined": viewer_id is not None and any(m.user_id == viewer_id for m in mine),
            **({"product": products.get(group.product_id)} if settings is not None else {}),
        })
    return out


async def get_group(resources: Resources, viewer_id: int | None,
                    group_id: int) -> dict[str, Any]:
    """A group's page (the shared link's target): terms, seats, time left, paid members."""
    async with resources.db.session() as session:
        group = await session.get(GroupBuy, group_id)
        if group is None or group.status == "opening":
            raise NotFound("No such group")
        return (await _views(session, [group], viewer_id, resources.settings))[0]


async def groups_of_product(resources: Resources, viewer_id: int | None,
                            query: ProductGroupsQuery) -> dict[str, Any]:
    """A product's group-buy offer: its SKUs' active rules and the open groups to join
    (fewest seats left first)."""
    async with resources.db.session() as session:
        rules = list((await session.execute(select(GroupBuyRule).where(
            GroupBuyRule.product_id == query.product_id, GroupBuyRule.status == "active")
            .order_by(GroupBuyRule.sku_id))).scalars())
        groups = list((await session.execute(select(GroupBuy).where(
            GroupBuy.product_id == query.product_id, GroupBuy.status == "open",
            GroupBuy.expires_at > utcnow(), GroupBuy.seats_taken < GroupBuy.size)
            .order_by((GroupBuy.size - GroupBuy.seats_taken), GroupBuy.expires_at)
            .limit(20))).scalars())
        return {"rules": [rule_view(r) for r in rules],
                "groups": await _views(session, groups, viewer_id)}


async def my_groups(resources: Resources, user_id: int, query: RuleListQuery) -> dict[str, Any]:
    """The caller's memberships, newest first, each with its group and order."""
    paging = PageQuery(page=query.page, limit=query.limit)
    async with resources.db.session() as session:
        where = [GroupBuyMember.user_id == user_id]
        total = int((await session.execute(select(func.count()).select_from(GroupBuyMember)
                                           .where(*where))).scalar_one())
        members = list((await session.execute(select(GroupBuyMember).where(*where)
                                               .order_by(GroupBuyMember.id.desc())
                                               .offset(paging.offset).limit(paging.limit))
                        ).scalars())
        groups = {g.id: g for g in (await session.execute(select(GroupBuy).where(
            GroupBuy.id.in_({m.group_id for m in members})))).scalars()} if members else {}
        views = {v["id"]: v for v in await _views(session, list(groups.values()), user_id,
                                                  resources.settings)}
        return page_result([{"member_status": m.status, "order_id": m.order_id,
                             "quantity": m.quantity, "is_opener": m.is_opener,
                             "group": views[m.group_id]} for m in members], total, paging)


async def check_chat_group_card(session: AsyncSession, sender_id: int, recipient_id: int,
                                group_id: int) -> dict[str, Any]:
    """A group shared in a DM (the invitation to join) carries its card: the product, the
    group price, the seats left and the time left, as of sending."""
    group = await session.get(GroupBuy, group_id)
    if group is None or group.status == "opening":
        raise NotFound("No such group")
    product = await session.get(Product, group.product_id)
    return {"group_id": group.id, "product_id": group.product_id,
            "name": product.name if product else "", "group_price": group.group_price,
            "size": group.size, "seats_left": group.size - group.seats_taken,
            "status": group.status, "expires_at": _iso(group.expires_at)}


# -- live topic -----------------------------------------------------------------------------------


async def _may_watch_group(resources: Resources, user_id: int, topic_id: str) -> bool:
    """"group:<id>" is watched by anyone who may see the group's page (members, viewers)."""
    if not topic_id.isdigit() or len(topic_id) > 18:
        raise NotFound("Unknown topic")
    async with resources.db.session() as session:
        group = await session.get(GroupBuy, int(topic_id))
    if group is None or group.status == "opening":
        raise NotFound("No such group")
    return True


topics.register_topic_kind("group", _may_watch_group)
chat.register_attachment_check("group_buy", check_chat_group_card)

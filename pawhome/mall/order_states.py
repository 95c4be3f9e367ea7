"""The order state machine, in one place: which action moves an order from which status to
which, and the one function that applies a transition (the row, its order_events entry, the
live `order.status` events to the buyer, the merchant and the `order:<id>` topic).

    pending_payment ──pay──▶ paid ──ship──▶ shipped ──confirm/auto──▶ completed
          │                   │ └─ready_for_pickup─▶ ready_for_pickup ──pick_up──▶ completed
          └─cancel─▶ cancelled │
                               └─request_refund─▶ refunding ──refunded──▶ refunded
    (paid, shipped, ready_for_pickup) ⇄ refunding: a rejected, withdrawn or failed refund, or
    a partial one, goes back to the status the order had before (status_before_refund).
    paid ──deliver_virtual──▶ completed: an order of virtual goods only, delivered into the
    buyer's inventory the moment it is paid (pawhome/points/inventory.py).
    paid ──wait_for_group──▶ paid_waiting_group ──group_filled──▶ paid: a group-buy member's
    order, paid, waits for its group to fill (pawhome/promotions/groupbuy.py); nothing ships
    while it waits. The group expires unfilled: request_refund (by the system only) takes
    it to refunding and on to refunded, its stock back.

An action not allowed from the current status raises OrderStateConflict (409) naming it.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import ORDER_STATES, Order, OrderEvent
from pawhome.platform import events
from pawhome.platform.errors import OrderStateConflict

ActorType = Literal["buyer", "merchant", "admin", "system"]
OrderStatus = Literal["pending_payment", "paid", "paid_waiting_group", "shipped",
                      "ready_for_pickup", "completed", "cancelled", "refunding", "refunded"]

# action -> (statuses it may start from, status it leads to). "back" leads to the status the
# order had before its refund started.
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "pay": (frozenset({"pending_payment"}), "paid"),
    "cancel": (frozenset({"pending_payment"}), "cancelled"),
    "ship": (frozenset({"paid"}), "shipped"),
    "ready_for_pickup": (frozenset({"paid"}), "ready_for_pickup"),
    "confirm_receipt": (frozenset({"shipped"}), "completed"),
    "auto_complete": (frozenset({"shipped"}), "completed"),
    "pick_up": (frozenset({"ready_for_pickup"}), "completed"),
    "wait_for_group": (frozenset({"paid"}), "paid_waiting_group"),
    "group_filled": (frozenset({"paid_waiting_group"}), "paid"),
    "request_refund": (frozenset({"paid", "paid_waiting_group", "shipped", "ready_for_pickup"}),
                       "refunding"),
    "refund_closed": (frozenset({"refunding"}), "back"),  # rejected, withdrawn, failed
    "partially_refunded": (frozenset({"refunding"}), "back"),
    "refunded": (frozenset({"refunding"}), "refunded"),
    "deliver_virtual": (frozenset({"paid"}), "completed"),
}
assert all(target in ORDER_STATES or target == "back" for _, target in TRANSITIONS.values())

ACTIVE = ("pending_payment", "paid", "paid_waiting_group", "shipped", "ready_for_pickup",
          "refunding")
# Paid, the goods not sent: a refund of everything returns the delivery fee and the stock.
NOT_SENT = ("paid", "paid_waiting_group", "ready_for_pickup")
FINAL = ("completed", "cancelled", "refunded")


class OrderStatusEvent(BaseModel):
    """`order.status`: an order (the user's as buyer, or as merchant) changed status."""
    model_config = ConfigDict(extra="forbid")
    order_id: int
    order_no: str
    status: OrderStatus
    previous: OrderStatus | Literal[""]
    action: str
    role: Literal["buyer", "merchant", "watcher"]
    reason: str = ""
    at: str


events.register_event_schema("order.status", OrderStatusEvent)


def allowed(action: str, status: str) -> bool:
    sources, _target = TRANSITIONS[action]
    return status in sources


def check(order: Order, action: str) -> None:
    """Raise OrderStateConflict unless `action` may run on the order as it is."""
    if action not in TRANSITIONS:
        raise ValueError(f"unknown order action {action!r}")
    if not allowed(action, order.status):
        raise OrderStateConflict(
            f"Cannot {action.replace('_', ' ')} an order that is {order.status}",
            errors=[{"field": "status", "message": order.status}])


def _event_data(order: Order, previous: str, action: str, role: str,
                reason: str) -> dict[str, Any]:
    return {"order_id": order.id, "order_no": order.order_no, "status": order.status,
            "previous": previous, "action": action, "role": role, "reason": reason,
            "at": order.updated_at.isoformat() + "Z"}


STAFF_ORDERS_TOPIC = "staff:orders"  # authorised for admins by pawhome/console/live.py


def record_placed(session: AsyncSession, order: Order, actor_id: int) -> None:
    """The first entry of a new order's timeline (it is born pending_payment). Caller
    commits; `order.id` must be assigned (flushed)."""
    session.add(OrderEvent(order_id=order.id, from_status="", to_status=order.status,
                           action="place", actor_type="buyer", actor_id=actor_id))


def transition(session: AsyncSession, order: Order, action: str, *, actor_type: ActorType,
               actor_id: int | None, reason: str = "") -> str:
    """Apply `action` to an order the caller has locked (SELECT ... FOR UPDATE): set its
    status, add the timeline entry, emit `order.status` to buyer and merchant and on the
    order's topic. Returns the previous status. Caller commits."""
    check(order, action)
    previous = order.status
    _sources, target = TRANSITIONS[action]
    if target == "back":
        target = order.status_before_refund or "paid"
    if action == "request_refund":
        order.status_before_refund = previous
    now = utcnow()
    order.status = target
    order.updated_at = now
    session.add(OrderEvent(order_id=order.id, from_status=previous, to_status=target,
                           action=action, actor_type=actor_type, actor_id=actor_id,
                           reason=reason[:255], created_at=now))
    events.emit_to_user(session, order.user_id, "order.status",
                        _event_data(order, previous, action, "buyer", reason))
    if order.merchant_id != order.user_id:
        events.emit_to_user(session, order.merchant_id, "order.status",
                            _event_data(order, previous, action, "merchant", reason))
    events.emit_to_topic(session, f"order:{order.id}", "order.status",
                         _event_data(order, previous, action, "watcher", reason))
    # The admins' live orders list in the web console (merchants get theirs above).
    events.emit_to_topic(session, STAFF_ORDERS_TOPIC, "order.status",
                         _event_data(order, previous, action, "watcher", reason))
    return previous

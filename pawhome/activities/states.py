"""The two state machines of activities, in one place, and the one function each that applies a
transition and records it in `activity_events` (with who made it).

Activity:

    draft ──publish──▶ published ──finish──▶ finished
    draft, published ──cancel──▶ cancelled

Registration (a new one starts confirmed, pending_payment or waitlisted):

    waitlisted ──promote──▶ confirmed | pending_payment
    pending_payment ──pay──▶ confirmed        pending_payment ──expire──▶ expired
    confirmed ──check_in──▶ checked_in
    waitlisted, pending_payment, confirmed ──cancel──▶ cancelled
    waitlisted ──drop──▶ cancelled             (promoted, but the points were short)

An action not allowed from the current status raises ActivityStateConflict or
RegistrationStateConflict (409).
"""
from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from models.activities import Activity, ActivityEvent, ActivityRegistration
from models.base import utcnow
from pawhome.platform.errors import ActivityStateConflict, RegistrationStateConflict, field_error

ActivityStatus = Literal["draft", "published", "cancelled", "finished"]
RegistrationStatus = Literal["waitlisted", "pending_payment", "confirmed", "checked_in",
                             "cancelled", "expired"]
ActorType = Literal["user", "admin", "merchant", "system"]

# action -> (statuses it may start from, status it leads to)
ACTIVITY_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "publish": (frozenset({"draft"}), "published"),
    "cancel": (frozenset({"draft", "published"}), "cancelled"),
    "finish": (frozenset({"published"}), "finished"),
}
# action -> (statuses it may start from, the statuses it may lead to)
REGISTRATION_TRANSITIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "promote": (frozenset({"waitlisted"}), frozenset({"confirmed", "pending_payment"})),
    "pay": (frozenset({"pending_payment"}), frozenset({"confirmed"})),
    "expire": (frozenset({"pending_payment"}), frozenset({"expired"})),
    "check_in": (frozenset({"confirmed"}), frozenset({"checked_in"})),
    "cancel": (frozenset({"waitlisted", "pending_payment", "confirmed"}),
               frozenset({"cancelled"})),
    "drop": (frozenset({"waitlisted"}), frozenset({"cancelled"})),
}
LIVE = frozenset({"waitlisted", "pending_payment", "confirmed", "checked_in"})
SEATED = frozenset({"pending_payment", "confirmed", "checked_in"})  # holding a seat


def apply_activity(session: AsyncSession, activity: Activity, action: str, *,
                   actor_type: ActorType, actor_id: int | None, reason: str = "") -> str:
    """Move a locked activity by `action` and record it; returns the status it left. Caller
    commits."""
    sources, target = ACTIVITY_TRANSITIONS[action]
    previous = activity.status
    if previous not in sources:
        raise ActivityStateConflict(f"The activity is {previous}: {action} is not possible",
                                    errors=[field_error("status", previous)])
    now = utcnow()
    activity.status, activity.updated_at = target, now
    if target == "published":
        activity.published_at = now
    elif target == "cancelled":
        activity.cancelled_at, activity.cancel_reason = now, reason[:255]
    elif target == "finished":
        activity.finished_at = now
    session.add(ActivityEvent(activity_id=activity.id, action=action, from_status=previous,
                              to_status=target, actor_type=actor_type, actor_id=actor_id,
                              reason=reason[:255], created_at=now))
    return previous


def record_registered(session: AsyncSession, registration: ActivityRegistration) -> None:
    """The first entry of a new (flushed) registration's timeline. Caller commits."""
    session.add(ActivityEvent(activity_id=registration.activity_id,
                              registration_id=registration.id, action="register",
                              from_status="", to_status=registration.status,
                              actor_type="user", actor_id=registration.user_id))


def apply_registration(session: AsyncSession, registration: ActivityRegistration, action: str,
                       target: str, *, actor_type: ActorType, actor_id: int | None,
                       reason: str = "") -> str:
    """Move a locked registration by `action` to `target` and record it; returns the status
    it left. Ending statuses clear `live_user_id` (the user may register again). Caller
    commits."""
    sources, targets = REGISTRATION_TRANSITIONS[action]
    previous = registration.status
    if previous not in sources or target not in targets:
        raise RegistrationStateConflict(
            f"The registration is {previous}: {action} is not possible",
            errors=[field_error("status", previous)])
    now = utcnow()
    registration.status, registration.updated_at = target, now
    if target not in LIVE:
        registration.live_user_id = None
    if target == "confirmed":
        registration.confirmed_at = now
    elif target == "checked_in":
        registration.checked_in_at = now
    elif target == "cancelled":
        registration.cancelled_at, registration.cancel_reason = now, reason[:255]
    session.add(ActivityEvent(activity_id=registration.activity_id,
                              registration_id=registration.id, action=action,
                              from_status=previous, to_status=target, actor_type=actor_type,
                              actor_id=actor_id, reason=reason[:255], created_at=now))
    return previous

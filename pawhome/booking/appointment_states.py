"""The appointment state machine, in one place: which action moves an appointment from which
status to which, who may take it, and the one function that applies a transition (the row,
its appointment_events entry, the live `appointment.status` events to the user, the
provider's owner and the `appointment:<id>` topic, through the outbox, and the task that
turns the entry into an `appointment` notification: pawhome/booking/appointment_notices.py).

    (book) ──needs confirmation──▶ pending_confirmation ──confirm──▶ confirmed
       └──────────────────────────────────────────────────────────▶ confirmed
    confirmed ──check_in──▶ checked_in ──complete──▶ completed
    pending_confirmation, confirmed ──cancel──▶ cancelled
        (the user before the cancellation deadline; the provider any time, with a reason)
    confirmed ──no_show──▶ no_show   (the provider, once start + grace has passed)
    pending_confirmation, confirmed ──reschedule──▶ (the same status, a new slot)
        (the user, before the cancellation deadline of the current slot)

An action not allowed from the current status raises AppointmentStateConflict (409).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import Appointment, AppointmentEvent
from pawhome.booking import appointment_notices, slots
from pawhome.platform import events
from pawhome.platform.errors import AppointmentStateConflict

ActorType = Literal["user", "provider", "admin", "system"]
AppointmentStatus = Literal["pending_confirmation", "confirmed", "checked_in", "completed",
                            "cancelled", "no_show"]

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "confirm": (frozenset({"pending_confirmation"}), "confirmed"),
    "check_in": (frozenset({"confirmed"}), "checked_in"),
    "complete": (frozenset({"checked_in"}), "completed"),
    "cancel": (frozenset({"pending_confirmation", "confirmed"}), "cancelled"),
    "no_show": (frozenset({"confirmed"}), "no_show"),
    # a new slot swapped in atomically (pawhome/booking/appointments.py); the status stays
    "reschedule": (frozenset({"pending_confirmation", "confirmed"}), "same"),
}
PROVIDER_ACTIONS = ("confirm", "check_in", "complete", "cancel", "no_show")
LIVE = ("pending_confirmation", "confirmed", "checked_in")
FREES_TIME = ("cancel",)  # these give the slot (or the nights) back


class AppointmentStatusEvent(BaseModel):
    """`appointment.status`: an appointment (the user's, or at the provider's) changed."""
    model_config = ConfigDict(extra="forbid")
    appointment_id: int
    status: AppointmentStatus
    previous: AppointmentStatus | Literal[""]
    action: str
    role: Literal["user", "provider", "watcher"]
    reason: str = ""
    start: str
    at: str


events.register_event_schema("appointment.status", AppointmentStatusEvent)


def check(appointment: Appointment, action: str) -> None:
    if action not in TRANSITIONS:
        raise ValueError(f"unknown appointment action {action!r}")
    sources, _target = TRANSITIONS[action]
    if appointment.status not in sources:
        raise AppointmentStateConflict(
            f"Cannot {action.replace('_', ' ')} an appointment that is {appointment.status}",
            errors=[{"field": "status", "message": appointment.status}])


def _data(appointment: Appointment, previous: str, action: str, role: str,
          reason: str) -> dict[str, Any]:
    return {"appointment_id": appointment.id, "status": appointment.status,
            "previous": previous, "action": action, "role": role, "reason": reason,
            "start": slots.iso_local(appointment.start_at),
            "at": slots.iso_local(appointment.updated_at)}


def _announce(session: AsyncSession, appointment: Appointment, previous: str, action: str,
              reason: str) -> None:
    events.emit_to_user(session, appointment.user_id, "appointment.status",
                        _data(appointment, previous, action, "user", reason))
    if appointment.owner_id != appointment.user_id:
        events.emit_to_user(session, appointment.owner_id, "appointment.status",
                            _data(appointment, previous, action, "provider", reason))
    events.emit_to_topic(session, f"appointment:{appointment.id}", "appointment.status",
                         _data(appointment, previous, action, "watcher", reason))
    appointment_notices.queue(session, appointment.id)


def record_booked(session: AsyncSession, appointment: Appointment, actor_id: int) -> None:
    """The first timeline entry of a new appointment (flushed: its id is set). Caller
    commits."""
    session.add(AppointmentEvent(appointment_id=appointment.id, from_status="",
                                 to_status=appointment.status, action="book",
                                 actor_type="user", actor_id=actor_id))
    _announce(session, appointment, "", "book", "")


def transition(session: AsyncSession, appointment: Appointment, action: str, *,
               actor_type: ActorType, actor_id: int | None, reason: str = "") -> str:
    """Apply `action` to an appointment the caller has locked: its status, the timeline
    entry, the live events. Returns the previous status. Caller commits."""
    check(appointment, action)
    previous = appointment.status
    now = utcnow()
    target = TRANSITIONS[action][1]
    appointment.status = previous if target == "same" else target
    appointment.updated_at = now
    session.add(AppointmentEvent(appointment_id=appointment.id, from_status=previous,
                                 to_status=appointment.status, action=action,
                                 actor_type=actor_type, actor_id=actor_id,
                                 reason=reason[:255], created_at=now))
    _announce(session, appointment, previous, action, reason)
    return previous

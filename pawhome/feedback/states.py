"""The feedback state machine, in one place: which action moves a ticket from which status to
which, and the one function that applies a transition (the row and its feedback_events entry).

    (submit) ──▶ open ──reply──▶ replied ──reply──▶ replied
    open, replied ──close──▶ closed ──reopen──▶ open

An action not allowed from the current status raises FeedbackStateConflict (409).
"""
from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.feedback import Feedback, FeedbackEvent
from pawhome.platform.errors import FeedbackStateConflict, field_error

FeedbackStatus = Literal["open", "replied", "closed"]
STATUSES: tuple[str, ...] = ("open", "replied", "closed")
ActorType = Literal["user", "admin"]

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "reply": (frozenset({"open", "replied"}), "replied"),
    "close": (frozenset({"open", "replied"}), "closed"),
    "reopen": (frozenset({"closed"}), "open"),
}


def record_submitted(session: AsyncSession, feedback: Feedback) -> None:
    """The first entry of a new (flushed) ticket's timeline. Caller commits."""
    session.add(FeedbackEvent(feedback_id=feedback.id, action="submit", from_status="",
                              to_status="open", actor_type="user", actor_id=feedback.user_id))


def apply(session: AsyncSession, feedback: Feedback, action: str, *, actor_type: ActorType,
          actor_id: int | None, reason: str = "") -> str:
    """Move a locked ticket by `action` and record it; returns the status it left. Caller
    commits."""
    sources, target = TRANSITIONS[action]
    previous = feedback.status
    if previous not in sources:
        raise FeedbackStateConflict(
            f"The feedback is {previous}: reopen it to reply" if action == "reply"
            else f"The feedback is {previous}: {action} is not possible",
            errors=[field_error("status", previous)])
    now = utcnow()
    feedback.status = target
    feedback.updated_at = now
    if target == "closed":
        feedback.closed_at = now
    elif previous == "closed":
        feedback.closed_at = None
    session.add(FeedbackEvent(feedback_id=feedback.id, action=action, from_status=previous,
                              to_status=target, actor_type=actor_type, actor_id=actor_id,
                              reason=reason, created_at=now))
    return previous

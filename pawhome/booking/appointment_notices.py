"""Appointment notifications: each timeline entry of an appointment (pawhome/booking/
appointment_states.py) becomes a notification in the `appointment` category for the party
that did not act — the provider's owner hears of a booking, a user's cancellation or
reschedule; the user hears of the provider's confirmation, check-in, completion,
cancellation or no-show. A notification schedules its WeChat subscribe message within the
user's quota (pawhome/messaging/notifications.py). docs/booking.md ("Notifications").

- **Never lost**: the transaction that records a transition also queues NOTICE_TASK through
  the outbox; a beat sweep (`send_overdue`) takes entries whose task was lost.
- **Never twice**: the task locks the appointment's unannounced entries, writes their
  notifications and stamps `notified_at` in one transaction; a rerun finds nothing to do.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import Appointment, AppointmentEvent, Service
from pawhome.booking import slots
from pawhome.messaging import notifications
from pawhome.platform import outbox
from pawhome.platform.resources import Resources

NOTICE_TASK = "default.notify_appointment"
OVERDUE_AFTER = dt.timedelta(minutes=2)  # the task had this long before the sweep steps in
SWEEP_BATCH = 200

# action -> (title, text); text takes {service}, {start}, {reason}
_TO_USER = {
    "book": ("预约已提交", "{service} {start} 已预约"),
    "confirm": ("预约已确认", "{service} {start} 商家已确认"),
    "check_in": ("已到店签到", "{service} {start} 已签到"),
    "complete": ("服务已完成", "{service} 已完成，欢迎评价"),
    "cancel": ("预约已取消", "{service} {start} 已被商家取消：{reason}"),
    "no_show": ("预约已过时", "{service} {start} 未到店，已记为爽约"),
    "reschedule": ("预约已改期", "{service} 改到 {start}"),
}
_TO_PROVIDER = {
    "book": ("新预约", "{service} {start} 有新预约"),
    "book_pending": ("新预约待确认", "{service} {start} 有新预约，请确认"),
    "cancel": ("预约已取消", "{service} {start} 用户已取消：{reason}"),
    "reschedule": ("预约已改期", "{service} 用户改到 {start}（{reason}）"),
}
_DEFAULT = ("预约更新", "{service} {start}")


def queue(session: AsyncSession, appointment_id: int) -> None:
    """Called by appointment_states with every timeline entry it adds: the task that
    announces the appointment's new entries commits with them (once per transaction)."""
    queued: set[int] = session.info.setdefault("appointment_notices", set())
    if appointment_id not in queued:
        queued.add(appointment_id)
        outbox.enqueue_task(session, NOTICE_TASK, appointment_id)


def _recipients(appointment: Appointment, entry: AppointmentEvent) -> list[tuple[int, str]]:
    """(user id, "user"/"provider") told of an entry: the parties other than its actor."""
    if entry.actor_type == "user":
        return [(appointment.owner_id, "provider")]
    told = [(appointment.user_id, "user")]
    if entry.actor_type == "admin":  # an admin acted for the provider: the owner hears too
        told.append((appointment.owner_id, "provider"))
    return told


def _message(appointment: Appointment, entry: AppointmentEvent, role: str,
             service_name: str) -> dict[str, Any]:
    key = entry.action
    if role == "provider" and key == "book" and entry.to_status == "pending_confirmation":
        key = "book_pending"
    title, text = (_TO_PROVIDER if role == "provider" else _TO_USER).get(key, _DEFAULT)
    start = appointment.start_at.replace(tzinfo=dt.UTC).astimezone(slots.TZ)
    return {"title": title,
            "text": text.format(service=service_name, start=f"{start:%m-%d %H:%M}",
                                reason=entry.reason or "无"),
            "appointment_id": appointment.id, "action": entry.action,
            "status": entry.to_status, "start": slots.iso_local(appointment.start_at)}


async def _announce(session: AsyncSession, appointment_id: int) -> int:
    """Write the notifications of an appointment's unannounced entries. Caller commits."""
    entries = list((await session.execute(select(AppointmentEvent).where(
        AppointmentEvent.appointment_id == appointment_id,
        AppointmentEvent.notified_at.is_(None)).order_by(AppointmentEvent.id)
        .with_for_update().execution_options(populate_existing=True))).scalars())
    if not entries:
        return 0
    appointment = await session.get(Appointment, appointment_id)
    assert appointment is not None
    service = await session.get(Service, appointment.service_id)
    service_name = service.name if service is not None else ""
    outgoing: list[tuple[int, str, AppointmentEvent]] = []
    now = utcnow()
    for entry in entries:
        entry.notified_at = now
        for recipient, role in _recipients(appointment, entry):
            if recipient != entry.actor_id:
                outgoing.append((recipient, role, entry))
    # notify() locks each recipient: always in one order, so two announcers cannot deadlock
    for recipient, role, entry in sorted(outgoing, key=lambda o: (o[0], o[2].id)):
        await notifications.notify(
            session, recipient, "appointment", f"appointment_{entry.action}",
            target_type="appointment", target_id=appointment.id,
            payload=_message(appointment, entry, role, service_name))
    return len(outgoing)


async def announce(resources: Resources, appointment_id: int) -> int:
    """NOTICE_TASK: the notifications of the appointment's new timeline entries. Returns how
    many were written (0 when another run wrote them)."""
    async with resources.db.session() as session, session.begin():
        return await _announce(session, appointment_id)


async def send_overdue(resources: Resources, now: dt.datetime | None = None) -> int:
    """Beat: announce entries whose task has not run within OVERDUE_AFTER (lost while the
    broker was down, or failed). Returns how many notifications were written."""
    cutoff = (now or utcnow()) - OVERDUE_AFTER
    async with resources.db.session() as session:
        ids = list((await session.execute(select(AppointmentEvent.appointment_id).where(
            AppointmentEvent.notified_at.is_(None), AppointmentEvent.created_at <= cutoff)
            .distinct().limit(SWEEP_BATCH))).scalars())
    written = 0
    for appointment_id in ids:
        written += await announce(resources, appointment_id)
    return written

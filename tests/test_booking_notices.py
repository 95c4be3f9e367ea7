"""Appointment notifications: every status change becomes one `appointment` notification for
the party that did not act, written by the real worker from the outbox task; a lost task is
caught up by the beat sweep, and no entry is ever announced twice."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.booking import AppointmentEvent
from models.realtime import Notification
from pawhome.booking import appointment_notices
from tests.booking_support import at, book, make_provider, pet_owner, tomorrow
from tests.fixtures_worker import wait_until


async def notices(resources, user_id: int) -> list[Notification]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Notification).where(
            Notification.user_id == user_id, Notification.category == "appointment",
            Notification.kind != "appointment_reminder").order_by(Notification.id)
        )).scalars())


async def kinds_of(resources, user_id: int, count: int) -> list[str]:
    """The kinds of the user's appointment notifications, once there are `count` of them."""
    async def enough() -> list[Notification] | None:
        rows = await notices(resources, user_id)
        return rows if len(rows) >= count else None

    rows = await wait_until(enough, what=f"{count} appointment notifications")
    return [n.kind for n in rows]


async def act(api, merchant, appointment_id: int, action: str, reason: str = ""):
    return await api.post(f"/v1/merchant/appointments/{appointment_id}/actions",
                          json={"action": action, "reason": reason}, token=merchant.token)


@pytest.mark.gen_test(timeout=120)
async def test_each_step_tells_the_other_party_once(api, resources, celery_worker_process):
    setup = await make_provider(api, resources, service={"needs_confirmation": True})
    merchant, sid = setup["merchant"], setup["service"]["id"]
    user, pet = await pet_owner(resources)
    made = await book(api, user, pet, sid, at(tomorrow(), "10:00"))
    assert made["status"] == "pending_confirmation"
    assert await kinds_of(resources, merchant.user_id, 1) == ["appointment_book"]
    [first] = await notices(resources, merchant.user_id)
    assert first.target_type == "appointment" and first.target_id == made["id"]
    assert first.payload["title"] == "新预约待确认"
    assert first.payload["status"] == "pending_confirmation"

    for action in ("confirm", "check_in", "complete"):
        (await act(api, merchant, made["id"], action)).ok()
    assert await kinds_of(resources, user.user_id, 3) == [
        "appointment_confirm", "appointment_check_in", "appointment_complete"]
    done = (await notices(resources, user.user_id))[-1]
    assert done.payload["status"] == "completed" and "评价" in done.payload["text"]

    # the user's own acts reach the provider, not the user
    again = await book(api, user, pet, sid, at(tomorrow(), "14:00"))
    (await api.post(f"/v1/appointments/{again['id']}/cancel", json={"reason": "有事"},
                    token=user.token)).ok()
    assert await kinds_of(resources, merchant.user_id, 3) == [
        "appointment_book", "appointment_book", "appointment_cancel"]
    cancelled = (await notices(resources, merchant.user_id))[-1]
    assert cancelled.payload["text"].endswith("有事") and cancelled.target_id == again["id"]

    # the provider's cancellation reaches the user with its reason
    third = await book(api, user, pet, sid, at(tomorrow(), "16:00"))
    (await act(api, merchant, third["id"], "cancel", "美容师请假")).ok()
    kinds = await kinds_of(resources, user.user_id, 4)
    assert kinds[-1] == "appointment_cancel"
    assert (await notices(resources, user.user_id))[-1].payload["text"].endswith("美容师请假")

    # every entry is stamped; a rerun of the task writes nothing more
    async with resources.db.session() as session:
        pending = (await session.execute(select(AppointmentEvent).where(
            AppointmentEvent.appointment_id.in_([made["id"], again["id"], third["id"]]),
            AppointmentEvent.notified_at.is_(None)))).scalars().all()
    assert pending == []
    assert await appointment_notices.announce(resources, made["id"]) == 0
    await asyncio.sleep(0.5)
    assert len(await notices(resources, user.user_id)) == 4
    assert len(await notices(resources, merchant.user_id)) == 4


@pytest.mark.gen_test(timeout=120)
async def test_a_lost_task_is_caught_up_by_the_sweep_and_racing_runs_write_once(
        api, resources, celery_worker_process):
    setup = await make_provider(api, resources)
    merchant = setup["merchant"]
    user, pet = await pet_owner(resources)
    made = await book(api, user, pet, setup["service"]["id"], at(tomorrow(), "11:00"))
    assert await kinds_of(resources, merchant.user_id, 1) == ["appointment_book"]
    # Then an entry whose task never ran (the broker was down): written straight to the
    # table, so only the sweep can find it.
    long_ago = utcnow() - dt.timedelta(minutes=10)
    async with resources.db.session() as session, session.begin():
        session.add(AppointmentEvent(
            appointment_id=made["id"], from_status="confirmed", to_status="confirmed",
            action="reschedule", actor_type="user", actor_id=user.user_id,
            reason="lost", created_at=long_ago))
    await appointment_notices.send_overdue(resources, now=long_ago)  # ours is not due yet
    assert [n.kind for n in await notices(resources, merchant.user_id)] == ["appointment_book"]
    written = await asyncio.gather(*[appointment_notices.send_overdue(resources)
                                     for _ in range(3)])
    assert sum(written) >= 1  # ours, and perhaps other tests' overdue entries
    assert [n.kind for n in await notices(resources, merchant.user_id)] == [
        "appointment_book", "appointment_reschedule"]
    assert await appointment_notices.announce(resources, made["id"]) == 0
    assert await notices(resources, user.user_id) == []  # the user acted: not told

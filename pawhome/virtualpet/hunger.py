""""Pet hungry" reminders: each pet row carries the moment its fullness falls under
VPET_HUNGRY_THRESHOLD (`hungry_remind_at`), set by every write of its statuses (adoption,
interactions); a beat job sends the due ones as `system` notifications, each of which
schedules its WeChat subscribe message within the owner's quota
(pawhome/messaging/notifications.py). docs/virtual-pet.md ("Hungry reminders").

- **Once**: a reminder is taken by a conditional UPDATE (`hungry_remind_at` still the moment
  the job read, the pet not reminded today) in the transaction that writes its notification:
  two racing runs, or an interaction that moved the moment meanwhile, never send one twice
  or send a stale one.
- **At most one a pet a day** (Asia/Shanghai, `hungry_reminded_on`): a pet that is hungry
  again on a day it was reminded waits for the next morning.
- **Never lost**: the job has no lower bound, so reminders that fell due while the workers
  were down go out on the next run (if the pet is still hungry then).
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.virtual_pets import VirtualPet
from pawhome.messaging import notifications
from pawhome.platform.resources import Resources
from pawhome.virtualpet import care
from settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
ALREADY_HUNGRY_DELAY = dt.timedelta(hours=2)  # hungry at a write: remind a little later
MORNING_HOUR = 9  # a pet reminded today waits for this hour tomorrow (local time)
SEND_BATCH = 200


def local_day(instant: dt.datetime) -> dt.date:
    """The Asia/Shanghai date of a naive-UTC instant."""
    return instant.replace(tzinfo=dt.UTC).astimezone(SHANGHAI).date()


def morning_after(day: dt.date) -> dt.datetime:
    """MORNING_HOUR on the day after `day`, Asia/Shanghai, as naive UTC."""
    local = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(MORNING_HOUR),
                                tzinfo=SHANGHAI)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _stored(pet: VirtualPet) -> dict[str, int]:
    return {s: int(getattr(pet, s)) for s in care.STATUSES}


def next_reminder(pet: VirtualPet, now: dt.datetime, rules: care.Rules) -> dt.datetime | None:
    """When to remind the owner of the pet's hunger, from its statuses as stored: the moment
    fullness falls under the threshold, or (hungry already) ALREADY_HUNGRY_DELAY from now."""
    when = care.hungry_at(_stored(pet), pet.status_at, pet.personality, rules)
    if when is None:
        return None
    return when if when > now else now + ALREADY_HUNGRY_DELAY


def schedule(pet: VirtualPet, now: dt.datetime, settings: Settings) -> None:
    """Set the pet's `hungry_remind_at` from its statuses (adoption calls it on the new
    pet; interactions do it themselves). Caller commits."""
    pet.hungry_remind_at = next_reminder(pet, now, care.rules_from(settings))


async def _send_one(session: AsyncSession, pet_id: int, due_at: dt.datetime | None,
                    now: dt.datetime, rules: care.Rules) -> bool:
    pet = await session.get(VirtualPet, pet_id)
    if pet is None or pet.deleted_at is not None or due_at is None \
            or pet.hungry_remind_at != due_at:
        return False  # released, or an interaction moved the moment meanwhile
    today = local_day(now)
    fullness = care.current(_stored(pet), pet.status_at, now, pet.personality,
                            rules)["fullness"]
    unchanged = [VirtualPet.id == pet_id, VirtualPet.hungry_remind_at == due_at]
    if pet.hungry_reminded_on == today or fullness >= rules.hungry_below:
        later = morning_after(today) if fullness < rules.hungry_below \
            else next_reminder(pet, now, rules)
        await session.execute(update(VirtualPet).where(*unchanged)
                              .values(hungry_remind_at=later))
        return False
    taken = await session.execute(
        update(VirtualPet).where(*unchanged, or_(VirtualPet.hungry_reminded_on.is_(None),
                                                 VirtualPet.hungry_reminded_on != today))
        .values(hungry_remind_at=None, hungry_reminded_on=today))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False  # another run sent it
    await notifications.notify(
        session, pet.owner_id, "system", "pet_hungry", target_type="virtual_pet",
        target_id=pet.id, payload={"title": "宠物饿了", "pet_id": pet.id,
                                   "text": f"{pet.name} 饿了，快来喂喂它吧",
                                   "fullness": round(fullness / 1000, 1)})
    return True


async def send_due(resources: Resources, limit: int = SEND_BATCH) -> int:
    """Beat: remind the owners of the pets whose hungry moment has come (the late ones too).
    Returns how many were sent."""
    rules, now = care.rules_from(resources.settings), utcnow()
    async with resources.db.session() as session:
        due = list((await session.execute(
            select(VirtualPet.id, VirtualPet.hungry_remind_at)
            .where(VirtualPet.hungry_remind_at <= now, VirtualPet.deleted_at.is_(None))
            .order_by(VirtualPet.hungry_remind_at, VirtualPet.id).limit(limit))).all())
    sent = 0
    for pet_id, due_at in due:
        async with resources.db.session() as session, session.begin():
            sent += await _send_one(session, pet_id, due_at, now, rules)
    return sent

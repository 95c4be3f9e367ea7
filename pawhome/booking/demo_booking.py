"""Demo booking data for `make run`: two providers near each other in Shenzhen — a
grooming shop of the first demo merchant (two groomers) and a clinic with boarding of the
second (a doctor; vaccines, a check-up with a ¥30 deposit, boarding rooms) — each with
hours 09:00-18:00 every day and a lunch break, so slots show up for the coming week; and a
dog and a cat for the demo buyers to book for. Written straight into the tables (it is our
data). Idempotent: nothing is added once any provider exists. docs/booking.md.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.booking import Provider, ScheduleBreak, Service, Staff, StaffService, WorkingHours
from models.community import Pet

OPEN, CLOSE = 9 * 60, 18 * 60
LUNCH = (12 * 60, 13 * 60)


def _service(provider: Provider, name: str, kind: str, minutes: int, price: int,
             **rules: object) -> Service:
    terms: dict[str, object] = {"min_notice_minutes": 60, "horizon_days": 30,
                                "cancel_deadline_hours": 2, **rules}
    return Service(provider_id=provider.id, name=name, kind=kind, duration_minutes=minutes,
                   price=price, **terms)


def _week(session: AsyncSession, provider: Provider, staff_id: int | None) -> None:
    for weekday in range(7):
        session.add(WorkingHours(provider_id=provider.id, staff_id=staff_id, weekday=weekday,
                                 start_minute=OPEN, end_minute=CLOSE))


async def seed_demo_booking(session: AsyncSession, merchant_ids: list[int],
                            buyer_ids: list[int]) -> int:
    """Rows created (0 when a provider exists already)."""
    if (await session.execute(select(func.count(Provider.id)))).scalar_one():
        return 0
    shop = Provider(owner_id=merchant_ids[0], name="萌宠美容馆 (福田店)",
                    address="深圳市福田区福华三路 88 号", lat=Decimal("22.540500"),
                    lng=Decimal("114.055200"), hours_text="每天 09:00-18:00",
                    phone="0755-8888 0001", photos=[])
    clinic = Provider(owner_id=merchant_ids[-1], name="安心宠物医院",
                      address="深圳市南山区科技园南区 6 号", lat=Decimal("22.531000"),
                      lng=Decimal("113.944700"), hours_text="每天 09:00-18:00，寄养 24 小时",
                      phone="0755-8888 0002", photos=[])
    session.add_all([shop, clinic])
    await session.flush()
    bath = _service(shop, "洗澡 + 吹干", "grooming", 60, 8800, buffer_after=10,
                    pet_types=["dog", "cat"], max_weight_kg=30)
    trim = _service(shop, "造型修剪", "grooming", 90, 16800, buffer_after=15,
                    pet_types=["dog"], needs_confirmation=True)
    vaccine = _service(clinic, "狂犬疫苗", "vaccine", 20, 6000, pet_types=["dog", "cat"])
    checkup = _service(clinic, "常规体检", "medical", 30, 12000, buffer_after=10,
                       deposit=3000)  # ¥30 online, the rest at the clinic
    rooms = _service(clinic, "寄养标准间", "boarding", 1440, 9800, capacity=3,
                     uses_staff=False, pet_types=["dog", "cat"], cancel_deadline_hours=24)
    session.add_all([bath, trim, vaccine, checkup, rooms])
    groomers = [Staff(provider_id=shop.id, name="小林", title="高级美容师",
                      bio="十年美容经验，擅长泰迪造型"),
                Staff(provider_id=shop.id, name="阿杰", title="美容师", bio="猫咪洗护专家")]
    doctor = Staff(provider_id=clinic.id, name="王医生", title="执业兽医师",
                   bio="小动物内科，疫苗与体检")
    session.add_all([*groomers, doctor])
    await session.flush()
    session.add_all([StaffService(staff_id=g.id, service_id=bath.id) for g in groomers])
    session.add(StaffService(staff_id=groomers[0].id, service_id=trim.id))
    session.add_all([StaffService(staff_id=doctor.id, service_id=s.id)
                     for s in (vaccine, checkup)])
    for staff in (*groomers, doctor):
        _week(session, shop if staff.provider_id == shop.id else clinic, staff.id)
    for provider in (shop, clinic):  # lunch, for everyone, every day
        session.add_all(ScheduleBreak(provider_id=provider.id, staff_id=None, weekday=weekday,
                                      start_minute=LUNCH[0], end_minute=LUNCH[1])
                        for weekday in range(7))
    created = 2 + 5 + 3 + 5 + 21 + 14
    for owner, (name, species, weight) in zip(
            buyer_ids, [("豆豆", "dog", Decimal("9.5")), ("Mochi", "cat", Decimal("4.2"))],
            strict=False):
        has_pet = (await session.execute(select(func.count(Pet.id)).where(
            Pet.owner_id == owner, Pet.deleted_at.is_(None)))).scalar_one()
        if not has_pet:
            session.add(Pet(owner_id=owner, name=name, species=species, weight_kg=weight))
            created += 1
    return created

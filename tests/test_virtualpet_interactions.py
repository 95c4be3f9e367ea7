"""Interactions with a virtual pet: each one applies its effect to the statuses decayed to
now, uses its item from the inventory in the same transaction, logs the changes, gives
experience (a level-up is announced), starts its cooldown; refusals change nothing; two
interactions at once never lose an update."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from models.points import InventoryItem
from models.realtime import Notification
from models.virtual_pets import PetInteraction
from tests.event_contract import assert_events_valid, capture_events, types_of
from tests.virtualpet_support import give_item, make_pet, pet_row


def path(pet_id: int) -> str:
    return f"/v1/virtual-pets/{pet_id}/interactions"


async def held(resources, user_id: int, sku_id: int) -> int:
    async with resources.db.session() as session:
        found = (await session.execute(select(InventoryItem.quantity).where(
            InventoryItem.user_id == user_id, InventoryItem.sku_id == sku_id))).scalar()
    return int(found or 0)


async def logged(resources, pet_id: int) -> list[PetInteraction]:
    async with resources.db.session() as session:
        return list((await session.execute(select(PetInteraction).where(
            PetInteraction.pet_id == pet_id).order_by(PetInteraction.id))).scalars())


async def notices(resources, user_id: int, kind: str) -> list[Notification]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Notification).where(
            Notification.user_id == user_id, Notification.kind == kind))).scalars())


@pytest.fixture
def no_cooldowns(settings):
    for kind in ("feeding", "petting", "playing", "cleaning", "training"):
        setattr(settings, f"vpet_cooldown_{kind}_seconds", 0)
    return settings


@pytest.mark.gen_test(timeout=30)
async def test_feeding_uses_a_food_raises_fullness_and_starts_the_cooldown(api, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, fullness=40_000)
    food = await give_item(resources, owner.user_id, "virtual_pet_food", 2)
    (await api.get(f"/v1/virtual-pets/{pet_id}", token=owner.token)).ok()  # cached
    data = (await api.post(path(pet_id), token=owner.token,
                           json={"type": "feeding", "item_id": food})).ok()
    assert data["pet"]["statuses"]["fullness"] == pytest.approx(70.0, abs=0.1)
    assert data["pet"]["exp"] == 5 and data["pet"]["cooldowns"]["feeding"] == 1800
    change = data["interaction"]
    assert change["type"] == "feeding" and change["item_sku_id"] == food
    assert change["changes"]["fullness"] == pytest.approx([40.0, 70.0], abs=0.1)
    assert change["exp_gained"] == 5 and change["leveled_up"] is False
    assert await held(resources, owner.user_id, food) == 1
    # The detail is no longer the cached one.
    detail = (await api.get(f"/v1/virtual-pets/{pet_id}", token=owner.token)).ok()
    assert detail["statuses"]["fullness"] == pytest.approx(70.0, abs=0.1)
    # Again at once: the cooldown, and nothing used.
    again = await api.post(path(pet_id), token=owner.token,
                           json={"type": "feeding", "item_id": food})
    body = again.error(409, code=40973)
    assert 1790 <= body["data"]["retry_after"] <= 1800 and body["data"]["type"] == "feeding"
    assert int(again.headers["Retry-After"]) == body["data"]["retry_after"]
    assert await held(resources, owner.user_id, food) == 1
    [row] = await logged(resources, pet_id)
    assert row.changes["fullness"][1] - row.changes["fullness"][0] == 30_000
    history = (await api.get(path(pet_id), token=owner.token)).ok()
    assert history["total"] == 1 and history["items"][0]["id"] == change["id"]


@pytest.mark.gen_test(timeout=30)
async def test_refusals_change_nothing(api, resources):
    owner, other = await api.login(), await api.login()
    pet_id = await make_pet(resources, owner.user_id, fullness=96_000, cleanliness=99_000)
    food = await give_item(resources, owner.user_id, "virtual_pet_food")
    toy = await give_item(resources, owner.user_id, "virtual_pet_toy")
    others_food = await give_item(resources, other.user_id, "virtual_pet_food")
    post = api.post
    (await post(path(pet_id), token=owner.token,
                json={"type": "feeding", "item_id": food})).error(400, code=40030)
    (await post(path(pet_id), token=owner.token, json={"type": "cleaning"})).error(
        400, code=40031)
    (await post(path(pet_id), token=owner.token, json={"type": "feeding"})).error(
        422, code=42265, field="item_id")
    (await post(path(pet_id), token=owner.token,
                json={"type": "feeding", "item_id": toy})).error(422, code=42264, field="item_id")
    (await post(path(pet_id), token=owner.token,
                json={"type": "petting", "item_id": toy})).error(422, code=42264)
    (await post(path(pet_id), token=owner.token,
                json={"type": "playing", "item_id": others_food})).error(
        422, code=42232, field="item_id")
    (await post(path(pet_id), token=owner.token, json={"type": "dancing"})).error(
        422, field="type")
    (await post(path(pet_id), token=owner.token, json={"type": "petting", "x": 1})).error(
        422, field="x")
    (await post(path(pet_id), token=other.token, json={"type": "petting"})).error(404)
    (await api.get(path(pet_id), token=other.token)).error(404)
    (await post(path(2**62), token=owner.token, json={"type": "petting"})).error(404)
    assert await logged(resources, pet_id) == []
    assert await held(resources, owner.user_id, food) == 1
    assert (await pet_row(resources, pet_id)).exp == 0


@pytest.mark.gen_test(timeout=30)
async def test_playing_needs_a_toy_and_keeps_it_and_a_hungry_pet_will_not_play(api, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id)
    toy = await give_item(resources, owner.user_id, "virtual_pet_toy")
    (await api.post(path(pet_id), token=owner.token, json={"type": "playing"})).error(
        422, code=42265)
    data = (await api.post(path(pet_id), token=owner.token,
                           json={"type": "playing", "item_id": toy})).ok()
    assert data["pet"]["statuses"]["mood"] == pytest.approx(95.0, abs=0.1)
    assert data["pet"]["statuses"]["fullness"] == pytest.approx(75.0, abs=0.1)
    assert await held(resources, owner.user_id, toy) == 1
    hungry = await make_pet(resources, owner.user_id, fullness=5_000)
    (await api.post(path(hungry), token=owner.token,
                    json={"type": "playing", "item_id": toy})).error(400, code=40032)


@pytest.mark.gen_test(timeout=30)
async def test_a_level_up_is_announced_and_training_unlocks_a_skill(api, app, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, exp=90)
    async with resources.db.session() as session, session.begin():
        for _ in range(4):  # four trainings done before
            session.add(PetInteraction(pet_id=pet_id, user_id=owner.user_id, type="training",
                                       changes={}, exp_gained=0, level_after=1))
    async with capture_events(app, owner.user_id) as captured:
        data = (await api.post(path(pet_id), token=owner.token,
                               json={"type": "training"})).ok()
    events = await captured.events()
    assert_events_valid(events)
    assert types_of(events) == ["pet.level_up", "notify.new"]
    assert events[0]["data"] == {"pet_id": pet_id, "name": "团子", "level": 2,
                                 "previous_level": 1, "exp": 105, "skill_unlocked": "sit"}
    assert data["interaction"]["leveled_up"] is True
    assert data["interaction"]["skill_unlocked"] == "sit"
    assert (data["pet"]["level"], data["pet"]["exp"], data["pet"]["skills"]) == (2, 105, ["sit"])
    [notice] = await notices(resources, owner.user_id, "pet_level_up")
    assert notice.category == "system" and notice.target_id == pet_id
    assert notice.payload["level"] == 2
    row = await pet_row(resources, pet_id)
    assert (row.level, row.exp, row.skills) == (2, 105, ["sit"])


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_interactions_all_count_without_cooldowns(api, resources,
                                                                   no_cooldowns):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, mood=0, affection=0)
    replies = await asyncio.gather(*[
        api.post(path(pet_id), token=owner.token, json={"type": "petting"})
        for _ in range(10)])
    assert [r.status for r in replies] == [200] * 10
    row = await pet_row(resources, pet_id)
    assert row.exp == 20 and row.affection >= 30_000 - 5 and row.mood >= 100_000 - 50
    assert len(await logged(resources, pet_id)) == 10

    hungry = await make_pet(resources, owner.user_id, fullness=0)
    food = await give_item(resources, owner.user_id, "virtual_pet_food", 10)
    replies = await asyncio.gather(*[
        api.post(path(hungry), token=owner.token, json={"type": "feeding", "item_id": food})
        for _ in range(8)])
    # 0 -> 30 -> 60 -> 90 -> 100, then full: four eat, four are refused, four foods used.
    assert sorted(r.status for r in replies) == [200] * 4 + [400] * 4
    assert await held(resources, owner.user_id, food) == 6
    row = await pet_row(resources, hungry)
    assert row.fullness >= 99_990 and row.exp == 20
    assert len(await logged(resources, hungry)) == 4


@pytest.mark.gen_test(timeout=60)
async def test_with_a_cooldown_one_of_a_burst_gets_through(api, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, fullness=10_000)
    food = await give_item(resources, owner.user_id, "virtual_pet_food", 5)
    replies = await asyncio.gather(*[
        api.post(path(pet_id), token=owner.token, json={"type": "feeding", "item_id": food})
        for _ in range(5)])
    assert sorted(r.status for r in replies) == [200] + [409] * 4
    assert await held(resources, owner.user_id, food) == 4
    assert len(await logged(resources, pet_id)) == 1


@pytest.mark.gen_test(timeout=30)
async def test_a_replayed_request_feeds_once(api, resources, no_cooldowns):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, fullness=10_000)
    food = await give_item(resources, owner.user_id, "virtual_pet_food", 3)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = (await api.post(path(pet_id), token=owner.token, headers=key,
                            json={"type": "feeding", "item_id": food})).ok()
    second = (await api.post(path(pet_id), token=owner.token, headers=key,
                             json={"type": "feeding", "item_id": food})).ok()
    assert first["interaction"]["id"] == second["interaction"]["id"]
    assert await held(resources, owner.user_id, food) == 2

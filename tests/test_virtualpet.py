"""Reading virtual pets: the owner sees the statuses decayed to now, cooldowns, skills and
experience to the next level; anyone else (a visitor too) the public card; a released pet is
404 to all. The cached row stays correct: it holds what was stored, and the decay is
computed on every read."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from models.base import utcnow
from models.virtual_pets import VirtualPet
from pawhome.virtualpet import pets
from tests.virtualpet_support import make_pet, pet_row

PUBLIC_KEYS = {"id", "name", "species", "level", "thumbnail_url", "owner", "created_at"}


def path(pet_id: int) -> str:
    return f"/v1/virtual-pets/{pet_id}"


@pytest.mark.gen_test(timeout=30)
async def test_the_owner_sees_statuses_decayed_to_now(api, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, hours_ago=10, exp=150)
    data = (await api.get(path(pet_id), token=owner.token)).ok()
    assert data["id"] == pet_id and data["owner"]["id"] == owner.user_id
    # calm: mood 3*0.8/h, fullness 4*0.9/h, cleanliness 2/h, affection 0.5/h, for 10 h.
    assert data["statuses"] == pytest.approx(
        {"mood": 56.0, "fullness": 44.0, "cleanliness": 60.0, "affection": 15.0}, abs=0.1)
    assert (data["level"], data["exp"], data["next_level_exp"], data["exp_to_next"]) == \
        (2, 150, 383, 233)
    assert data["cooldowns"] == {"feeding": 0, "petting": 0, "playing": 0, "cleaning": 0,
                                 "training": 0}
    assert data["skills"] == [] and data["hungry"] is False


@pytest.mark.gen_test(timeout=30)
async def test_others_and_visitors_see_the_public_card(api, resources):
    owner, other = await api.login(), await api.login()
    pet_id = await make_pet(resources, owner.user_id)
    card = (await api.get(path(pet_id), token=other.token)).ok()
    assert set(card) == PUBLIC_KEYS and card["owner"]["id"] == owner.user_id
    assert set((await api.get(path(pet_id))).ok()) == PUBLIC_KEYS


@pytest.mark.gen_test(timeout=30)
async def test_the_cached_row_is_decayed_on_every_read_and_dropped_on_a_write(api, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id)
    first = (await api.get(path(pet_id), token=owner.token)).ok()  # fills the cache
    assert first["statuses"]["fullness"] == 80.0
    # The stored row moves back 5 hours behind the cache's back: still the cached row...
    async with resources.db.session() as session, session.begin():
        await session.execute(update(VirtualPet).where(VirtualPet.id == pet_id).values(
            status_at=utcnow() - dt.timedelta(hours=5)))
    assert (await api.get(path(pet_id), token=owner.token)).ok()["statuses"]["fullness"] \
        == 80.0
    # ... until a write drops it; then the decay of the stored row shows.
    await pets.forget(resources.cache, [pet_id])
    assert (await api.get(path(pet_id), token=owner.token)).ok()["statuses"]["fullness"] \
        == pytest.approx(62.0, abs=0.1)


@pytest.mark.gen_test(timeout=30)
async def test_my_pets_lists_only_mine_newest_first(api, resources):
    owner, other = await api.login(), await api.login()
    older = await make_pet(resources, owner.user_id, name="大白")
    newer = await make_pet(resources, owner.user_id, name="小黑")
    await make_pet(resources, other.user_id)
    page = (await api.get("/v1/virtual-pets?limit=1", token=owner.token)).ok()
    assert page["total"] == 2 and [p["id"] for p in page["items"]] == [newer]
    page2 = (await api.get("/v1/virtual-pets?limit=1&page=2", token=owner.token)).ok()
    assert [p["id"] for p in page2["items"]] == [older]
    assert "statuses" in page2["items"][0] and "thumbnail_url" in page2["items"][0]
    (await api.get("/v1/virtual-pets?limit=1000", token=owner.token)).error(422, field="limit")
    (await api.get("/v1/virtual-pets")).error(401)


@pytest.mark.gen_test(timeout=30)
async def test_releasing_a_pet_is_the_owners_only_and_hides_it(api, resources):
    owner, other = await api.login(), await api.login()
    pet_id = await make_pet(resources, owner.user_id)
    (await api.get(path(pet_id), token=other.token)).ok()  # cached
    (await api.delete(path(pet_id), token=other.token)).error(404)
    assert (await api.delete(path(pet_id), token=owner.token)).ok()["released"] is True
    (await api.get(path(pet_id), token=owner.token)).error(404)
    (await api.get(path(pet_id), token=other.token)).error(404)
    (await api.delete(path(pet_id), token=owner.token)).error(404)
    assert (await api.get("/v1/virtual-pets", token=owner.token)).ok()["total"] == 0
    assert (await pet_row(resources, pet_id)).deleted_at is not None
    (await api.get(path(2**62))).error(404)

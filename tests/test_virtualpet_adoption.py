"""Adopting a generated pet (docs/virtual-pet.md "Adoption"): the caller's done, unexpired
generation becomes their pet once; names are checked; the pets-per-user limit; two adoptions
at once make one pet. Generations are written directly (done), so no task runs."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from models.virtual_pets import PetGeneration, VirtualPet
from tests.generation_support import written_generation


def _adopt(api, user, generation_id: int, name: str = "Mochi", key: str | None = None):
    return api.post("/v1/virtual-pets", json={"generation_id": generation_id, "name": name},
                    token=user.token, headers={"Idempotency-Key": key or uuid.uuid4().hex})


@pytest.mark.gen_test
async def test_a_done_generation_becomes_my_pet_once(api, resources):
    me = await api.login()
    gen = await written_generation(resources, me.user_id, personality="curious")
    pet = (await _adopt(api, me, gen, name=" Mochi ")).ok(201)
    assert pet["name"] == "Mochi" and pet["species"] == "cat"
    assert pet["personality"] == "curious" and pet["level"] == 1
    assert pet["params"]["colours"] == ["#a07755"]
    assert pet["statuses"]["fullness"] == 80 and pet["sprite_url"] == ""
    state = (await api.get(f"/v1/virtual-pets/generations/{gen}", token=me.token)).ok()
    assert state["status"] == "adopted"
    mine = (await api.get("/v1/virtual-pets", token=me.token)).ok()["items"]
    assert [p["id"] for p in mine] == [pet["id"]]
    assert (await api.get(f"/v1/virtual-pets/{pet['id']}", token=me.token)).ok() \
        ["name"] == "Mochi"
    (await _adopt(api, me, gen, name="Again")).error(409, code=40971)
    async with resources.db.session() as session:
        row = (await session.execute(select(VirtualPet).where(
            VirtualPet.generation_id == gen))).scalar_one()
    assert (row.owner_id, row.mood, row.fullness) == (me.user_id, 80_000, 80_000)


@pytest.mark.gen_test
async def test_the_same_idempotency_key_replays_the_adoption(api, resources):
    me = await api.login()
    gen = await written_generation(resources, me.user_id)
    key = uuid.uuid4().hex
    first = (await _adopt(api, me, gen, key=key)).ok(201)
    assert (await _adopt(api, me, gen, key=key)).ok(201) == first


@pytest.mark.gen_test
async def test_someone_elses_generation_is_not_found(api, resources):
    me, other = await api.login(), await api.login()
    theirs = await written_generation(resources, other.user_id)
    (await _adopt(api, me, theirs)).error(404)
    (await _adopt(api, me, 2**62)).error(404)
    (await _adopt(api, other, theirs)).ok(201)


@pytest.mark.gen_test
async def test_unfinished_failed_and_expired_generations_cannot_be_adopted(api, resources):
    me = await api.login()
    past = utcnow() - dt.timedelta(seconds=1)
    cases = {"still running": dict(status="running", params=None),
             "it failed: not an image": dict(status="failed", error="not an image",
                                             params=None),
             "it has expired": dict(expires_at=past),
             "has expired": dict(status="expired")}
    for why, fields in cases.items():
        gen = await written_generation(resources, me.user_id, **fields)
        body = (await _adopt(api, me, gen)).error(409, code=40970)
        assert why in body["message"], body
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(VirtualPet.id)).where(
            VirtualPet.owner_id == me.user_id))).scalar_one() == 0


@pytest.mark.gen_test
async def test_names_are_checked(api, resources):
    me = await api.login()
    gen = await written_generation(resources, me.user_id)
    for name in ("", "   ", "x" * 17):
        (await _adopt(api, me, gen, name=name)).error(422, field="name")
    (await _adopt(api, me, gen, name="小赌博猫")).error(422, code=42202, field="name")
    (await api.post("/v1/virtual-pets", json={"generation_id": gen}, token=me.token,
                    headers={"Idempotency-Key": uuid.uuid4().hex})).error(422, field="name")
    (await _adopt(api, me, gen, name="团子")).ok(201)


@pytest.mark.gen_test
async def test_a_user_has_at_most_the_pets_allowed(api, resources):
    me = await api.login()
    limit = resources.settings.vpet_pets_per_user
    for n in range(limit):
        gen = await written_generation(resources, me.user_id)
        (await _adopt(api, me, gen, name=f"Pet {n}")).ok(201)
    one_more = await written_generation(resources, me.user_id)
    (await _adopt(api, me, one_more)).error(409, code=40972)
    async with resources.db.session() as session:
        assert (await session.get(PetGeneration, one_more)).status == "done"


@pytest.mark.gen_test
async def test_two_adoptions_at_once_make_one_pet(api, resources):
    me = await api.login()
    gen = await written_generation(resources, me.user_id)
    replies = await asyncio.gather(*(_adopt(api, me, gen, name=f"Twin {i}") for i in range(4)))
    assert sorted(r.status for r in replies) == [201, 409, 409, 409]
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(VirtualPet.id)).where(
            VirtualPet.generation_id == gen))).scalar_one() == 1

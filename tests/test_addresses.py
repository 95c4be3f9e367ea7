"""Addresses: exactly one default (under concurrent creates, switches and deletes too), the
per-user limit, validation, others' addresses as 404, soft delete, and phones masked in logs."""
from __future__ import annotations

import asyncio
import logging
import random

import pytest
from sqlalchemy import func, select

from models.mall import Address
from pawhome.mall import addresses, delivery
from pawhome.platform.logs import JsonFormatter
from tests.interactions_support import make_user

HOME = {"contact_name": "张三", "phone": "13800138000", "province": "浙江省",
        "city": "杭州市", "district": "西湖区", "community": "翠苑一区",
        "detail": "3幢2单元501", "tag": "家"}


def home(**changes):
    return {**HOME, **changes}


async def defaults_of(resources, user_id: int) -> list[int]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Address.id).where(
            Address.user_id == user_id, Address.deleted_at.is_(None),
            Address.is_default.is_(True)))).scalars())


async def live_count(resources, user_id: int) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Address).where(
            Address.user_id == user_id, Address.deleted_at.is_(None)))).scalar_one())


@pytest.mark.gen_test(timeout=60)
async def test_the_first_address_is_the_default_and_a_later_one_only_when_asked(api, resources):
    me = await make_user(resources)
    first = (await api.post("/v1/addresses", json=home(), token=me.token)).ok(201)
    assert first["is_default"] is True
    assert first["full_address"] == "浙江省杭州市西湖区翠苑一区3幢2单元501"
    assert first["phone"] == "13800138000"  # the owner sees their own number
    second = (await api.post("/v1/addresses", json=home(tag="公司", community=""),
                             token=me.token)).ok(201)
    assert second["is_default"] is False and second["community"] == ""
    third = (await api.post("/v1/addresses", json=home(is_default=True),
                            token=me.token)).ok(201)
    assert third["is_default"] is True
    listed = (await api.get("/v1/addresses", token=me.token)).ok()
    assert [a["id"] for a in listed["items"]] == [third["id"], second["id"], first["id"]]
    assert [a["is_default"] for a in listed["items"]] == [True, False, False]
    assert listed["max"] == 20
    switched = (await api.post(f"/v1/addresses/{first['id']}/default", token=me.token)).ok()
    assert switched["is_default"] is True
    assert await defaults_of(resources, me.user_id) == [first["id"]]


@pytest.mark.gen_test(timeout=60)
async def test_deleting_the_default_promotes_the_newest_and_the_row_stays_soft_deleted(
        api, resources):
    me = await make_user(resources)
    ids = [(await api.post("/v1/addresses", json=home(detail=f"{n}号"),
                           token=me.token)).ok(201)["id"] for n in range(3)]
    assert await defaults_of(resources, me.user_id) == [ids[0]]
    gone = (await api.delete(f"/v1/addresses/{ids[0]}", token=me.token)).ok()
    assert gone == {"id": ids[0], "deleted": True, "default_id": ids[2]}
    assert await defaults_of(resources, me.user_id) == [ids[2]]
    (await api.get(f"/v1/addresses/{ids[0]}", token=me.token)).error(404)
    (await api.delete(f"/v1/addresses/{ids[0]}", token=me.token)).error(404)
    async with resources.db.session() as session:
        row = await session.get(Address, ids[0])
        assert row is not None and row.deleted_at is not None and row.is_default is False
    # Deleting one that is not the default leaves the default alone.
    assert (await api.delete(f"/v1/addresses/{ids[1]}",
                             token=me.token)).ok()["default_id"] == ids[2]
    assert (await api.delete(f"/v1/addresses/{ids[2]}",
                             token=me.token)).ok()["default_id"] is None
    assert (await api.get("/v1/addresses", token=me.token)).ok()["items"] == []
    again = (await api.post("/v1/addresses", json=home(), token=me.token)).ok(201)
    assert again["is_default"] is True


@pytest.mark.gen_test(timeout=120)
async def test_twenty_concurrent_creates_leave_exactly_one_default(resources):
    me = await make_user(resources)
    bodies = [addresses.AddressCreate(**home(detail=f"{n}号", is_default=n % 3 == 0))
              for n in range(20)]
    made = await asyncio.gather(*[addresses.create_address(resources, me.user_id, body)
                                  for body in bodies])
    assert len({a["id"] for a in made}) == 20
    assert await live_count(resources, me.user_id) == 20
    assert len(await defaults_of(resources, me.user_id)) == 1


@pytest.mark.gen_test(timeout=120)
async def test_concurrent_default_switches_creates_and_deletes_keep_exactly_one_default(
        resources):
    me = await make_user(resources)
    ids = [(await addresses.create_address(resources, me.user_id, addresses.AddressCreate(
        **home(detail=f"{n}号"))))["id"] for n in range(12)]
    rng = random.Random(7)
    doomed = rng.sample(ids, 4)

    async def switch(address_id: int) -> None:
        try:
            await addresses.make_default(resources, me.user_id, address_id)
        except Exception as error:  # a doomed one may be gone first: 404 is fine
            assert "not found" in str(error).lower()

    work = [switch(rng.choice(ids)) for _ in range(20)]
    work += [addresses.delete_address(resources, me.user_id, a) for a in doomed]
    work += [addresses.create_address(resources, me.user_id, addresses.AddressCreate(
        **home(detail=f"新{n}号", is_default=True))) for n in range(4)]
    rng.shuffle(work)
    await asyncio.gather(*work)
    assert await live_count(resources, me.user_id) == 12
    assert len(await defaults_of(resources, me.user_id)) == 1


@pytest.mark.gen_test(timeout=120)
async def test_the_twenty_first_address_is_refused_even_when_sent_at_once(api, resources):
    me = await make_user(resources)
    for n in range(16):
        await addresses.create_address(resources, me.user_id,
                                       addresses.AddressCreate(**home(detail=f"{n}号")))
    results = await asyncio.gather(*[
        addresses.create_address(resources, me.user_id,
                                 addresses.AddressCreate(**home(detail=f"{n}号")))
        for n in range(16, 24)], return_exceptions=True)
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 4 and all(type(r).__name__ == "ValidationFailed" for r in refused)
    assert await live_count(resources, me.user_id) == 20
    reply = await api.post("/v1/addresses", json=home(), token=me.token)
    assert "20" in reply.error(422, code=42200, field="body")["message"]
    # Deleting one makes room again.
    first = (await api.get("/v1/addresses", token=me.token)).ok()["items"][0]["id"]
    (await api.delete(f"/v1/addresses/{first}", token=me.token)).ok()
    (await api.post("/v1/addresses", json=home(), token=me.token)).ok(201)


@pytest.mark.gen_test(timeout=60)
async def test_someone_elses_address_is_not_found_for_every_verb(api, resources):
    owner, stranger = await make_user(resources), await make_user(resources)
    mine = (await api.post("/v1/addresses", json=home(), token=owner.token)).ok(201)["id"]
    path = f"/v1/addresses/{mine}"
    (await api.get(path, token=stranger.token)).error(404)
    (await api.request("PATCH", path, json={"detail": "改了"}, token=stranger.token)).error(404)
    (await api.delete(path, token=stranger.token)).error(404)
    (await api.post(path + "/default", token=stranger.token)).error(404)
    (await api.get("/v1/addresses/999999999", token=owner.token)).error(404)
    assert (await api.get(path, token=owner.token)).ok()["detail"] == "3幢2单元501"
    async with resources.db.session() as session:
        with pytest.raises(Exception, match="not found"):
            await delivery.get_address(session, stranger.user_id, mine)
        assert (await delivery.get_address(session, owner.user_id, mine)).id == mine


@pytest.mark.gen_test(timeout=60)
async def test_patch_changes_only_what_is_sent_and_refuses_nulls(api, resources):
    me = await make_user(resources)
    made = (await api.post("/v1/addresses", json=home(), token=me.token)).ok(201)
    path = f"/v1/addresses/{made['id']}"
    changed = (await api.request("PATCH", path, json={"detail": " 5幢101 ", "tag": ""},
                                 token=me.token)).ok()
    assert changed["detail"] == "5幢101" and changed["tag"] == ""
    assert changed["contact_name"] == "张三" and changed["is_default"] is True
    (await api.request("PATCH", path, json={"phone": None}, token=me.token)).error(
        422, field="phone")
    (await api.request("PATCH", path, json={"is_default": False}, token=me.token)).error(
        422, field="is_default")
    (await api.request("PATCH", path, json={"province": "火星"}, token=me.token)).error(
        422, field="province")


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("field,value", [
    ("phone", "23800138000"), ("phone", "1380013800"), ("phone", "138001380001"),
    ("phone", "1３800138000"), ("phone", "+8613800138000"), ("province", "浙江"),
    ("contact_name", "   "), ("contact_name", "x" * 33), ("detail", "a\x00b"),
    ("detail", "楼" * 129), ("city", ""), ("district", 5), ("community", "小" * 65),
    ("nickname", "unknown field"),
])
async def test_bad_address_fields_are_refused_naming_the_field(api, resources, field, value):
    me = await make_user(resources)
    reply = await api.post("/v1/addresses", json=home(**{field: value}), token=me.token)
    reply.error(422, field=field)
    assert "13800138000" not in reply.body.decode()
    assert await live_count(resources, me.user_id) == 0


@pytest.mark.gen_test(timeout=60)
async def test_the_contact_phone_never_reaches_a_log_line_unmasked(api, resources, caplog,
                                                                   access_lines):
    caplog.set_level(logging.DEBUG)
    me = await make_user(resources)
    made = (await api.post("/v1/addresses", json=home(phone="13912345678"),
                           token=me.token)).ok(201)
    (await api.request("PATCH", f"/v1/addresses/{made['id']}",
                       json={"phone": "15987654321"}, token=me.token)).ok()
    (await api.post("/v1/addresses", json=home(phone="1391234567x"),
                    token=me.token)).error(422)
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    lines += [str(line) for line in access_lines()]
    text = "\n".join(lines)
    assert "139****5678" in text and "159****4321" in text  # what was logged, masked
    for phone in ("13912345678", "15987654321", "1391234567x"):
        assert phone not in text
    assert any(line.get("route") == "/v1/addresses" for line in access_lines())


@pytest.mark.gen_test(timeout=60)
async def test_snapshot_and_default_address_for_checkout(api, resources):
    me = await make_user(resources)
    async with resources.db.session() as session:
        assert await delivery.default_address(session, me.user_id) is None
    made = (await api.post("/v1/addresses", json=home(), token=me.token)).ok(201)
    async with resources.db.session() as session:
        found = await delivery.default_address(session, me.user_id)
        assert found is not None and found.id == made["id"]
        snapshot = delivery.address_snapshot(found)
    assert snapshot == {"address_id": made["id"], "contact_name": "张三",
                        "phone": "13800138000", "province": "浙江省", "city": "杭州市",
                        "district": "西湖区", "community": "翠苑一区", "detail": "3幢2单元501",
                        "full_address": "浙江省杭州市西湖区翠苑一区3幢2单元501"}

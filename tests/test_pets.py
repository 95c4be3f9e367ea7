"""Pet cards: CRUD by the owner only, validation, soft delete, the public list."""
from __future__ import annotations

import datetime as dt

import pytest

CORGI = {"name": "豆豆", "species": "dog", "breed": "柯基", "gender": 1,
         "birthday": "2021-05-01", "weight_kg": 11.5, "neutered": True, "bio": "爱吃"}


@pytest.mark.gen_test
async def test_owner_creates_reads_updates_and_lists_a_pet(api):
    me = await api.login()
    pet = (await api.post("/v1/pets", json=CORGI, token=me.token)).ok(201)
    assert pet["name"] == "豆豆" and pet["species"] == "dog" and pet["weight_kg"] == 11.5
    assert pet["birthday"] == "2021-05-01" and pet["owner_id"] == me.user_id

    changed = (await api.put(f"/v1/pets/{pet['id']}", json={"name": "Doudou", "bio": None},
                             token=me.token)).ok()
    assert changed["name"] == "Doudou" and changed["bio"] == "" and changed["breed"] == "柯基"
    assert (await api.get(f"/v1/pets/{pet['id']}", token=me.token)).ok()["name"] == "Doudou"
    mine = (await api.get("/v1/pets", token=me.token)).ok()["items"]
    assert [p["id"] for p in mine] == [pet["id"]]


@pytest.mark.gen_test
async def test_another_users_pet_is_not_found_for_read_edit_and_delete(api):
    owner, other = await api.login(), await api.login()
    pet = (await api.post("/v1/pets", json=CORGI, token=owner.token)).ok(201)
    path = f"/v1/pets/{pet['id']}"
    (await api.get(path, token=other.token)).error(404)
    (await api.put(path, json={"name": "stolen"}, token=other.token)).error(404)
    (await api.delete(path, token=other.token)).error(404)
    assert (await api.get(path, token=owner.token)).ok()["name"] == "豆豆"


@pytest.mark.gen_test
async def test_invalid_pet_fields_are_rejected_with_the_field_named(api):
    me = await api.login()
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    cases = [
        ({**CORGI, "species": "dragon"}, "species"),
        ({**CORGI, "birthday": tomorrow}, "birthday"),
        ({**CORGI, "name": "   "}, "name"),
        ({**CORGI, "name": "x" * 33}, "name"),
        ({**CORGI, "weight_kg": -3}, "weight_kg"),
        ({**CORGI, "gender": 7}, "gender"),
        ({**CORGI, "owner_id": 1}, "owner_id"),
        ({"species": "cat"}, "name"),
    ]
    for body, field in cases:
        (await api.post("/v1/pets", json=body, token=me.token)).error(422, field=field)
    pet = (await api.post("/v1/pets", json=CORGI, token=me.token)).ok(201)
    (await api.put(f"/v1/pets/{pet['id']}", json={"species": None},
                   token=me.token)).error(422, field="species")
    assert (await api.get("/v1/pets", token=me.token)).ok()["items"][0]["species"] == "dog"


@pytest.mark.gen_test
async def test_deleted_pet_disappears_from_lists_and_reads(api):
    me, visitor = await api.login(), await api.login()
    keep = (await api.post("/v1/pets", json=CORGI, token=me.token)).ok(201)
    gone = (await api.post("/v1/pets", json={**CORGI, "name": "Mimi", "species": "cat"},
                           token=me.token)).ok(201)
    (await api.delete(f"/v1/pets/{gone['id']}", token=me.token)).ok()
    (await api.get(f"/v1/pets/{gone['id']}", token=me.token)).error(404)
    (await api.delete(f"/v1/pets/{gone['id']}", token=me.token)).error(404)
    public = (await api.get(f"/v1/users/{me.user_id}/pets", token=visitor.token)).ok()
    assert [p["id"] for p in public["items"]] == [keep["id"]]
    anonymous = (await api.get(f"/v1/users/{me.user_id}/pets")).ok()
    assert [p["id"] for p in anonymous["items"]] == [keep["id"]]


@pytest.mark.gen_test
async def test_public_pet_list_is_hidden_across_a_block_and_for_unknown_users(api):
    me, blocker = await api.login(), await api.login()
    (await api.post("/v1/pets", json=CORGI, token=blocker.token)).ok(201)
    (await api.post("/v1/users/me/blocks", json={"user_id": me.user_id},
                    token=blocker.token)).ok()
    (await api.get(f"/v1/users/{blocker.user_id}/pets", token=me.token)).error(404)
    (await api.get(f"/v1/users/{me.user_id}/pets", token=blocker.token)).error(404)
    (await api.get("/v1/users/999999999/pets")).error(404)
    (await api.get(f"/v1/users/{me.user_id}/pets", token="garbage")).error(401)


@pytest.mark.gen_test
async def test_pets_need_login_and_an_unknown_avatar_is_refused(api):
    (await api.get("/v1/pets")).error(401)
    (await api.post("/v1/pets", json=CORGI)).error(401)
    me = await api.login()
    (await api.post("/v1/pets", json={**CORGI, "avatar_media_id": 987654321},
                    token=me.token)).error(422)
    assert (await api.get("/v1/pets", token=me.token)).ok()["items"] == []


@pytest.mark.gen_test
async def test_avatar_must_be_a_ready_image_of_the_owner(api, resources):
    from tests.test_posts import make_media

    me, other = await api.login(), await api.login()
    image = await make_media(resources, me.user_id)
    video = await make_media(resources, me.user_id, "video")
    theirs = await make_media(resources, other.user_id)
    pet = (await api.post("/v1/pets", json={**CORGI, "avatar_media_id": image},
                          token=me.token)).ok(201)
    assert pet["avatar_media_id"] == image
    for media_id in (video, theirs):
        (await api.put(f"/v1/pets/{pet['id']}", json={"avatar_media_id": media_id},
                       token=me.token)).error(422, field="avatar_media_id.0")
    assert (await api.get(f"/v1/pets/{pet['id']}", token=me.token)).ok()["avatar_media_id"] \
        == image

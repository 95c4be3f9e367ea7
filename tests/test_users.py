"""Profiles, settings, public profiles under privacy rules, and block lists."""
from __future__ import annotations

import datetime as dt

import pytest


async def put_me(api, user, body):
    return await api.put("/v1/users/me", json=body, token=user.token)


# -- own profile --------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_emoji_nickname_round_trips_on_mariadb(api, resources):
    assert resources.settings.database_url.startswith("mysql")
    user = await api.login()
    nickname = "🐶旺财🐾Ｌｕｃｋｙ👨‍👩‍👧"
    assert (await put_me(api, user, {"nickname": nickname})).ok()["nickname"] == nickname
    assert (await api.get("/v1/users/me", token=user.token)).ok()["nickname"] == nickname


@pytest.mark.gen_test
async def test_profile_update_changes_only_the_fields_sent(api):
    user = await api.login()
    (await put_me(api, user, {"nickname": "  阿黄  ", "gender": 2, "birthday": "2015-06-01",
                              "bio": "爱狗人士", "avatar_url": "https://cdn.example.com/a.jpg"})).ok()
    data = (await put_me(api, user, {"bio": "换个签名"})).ok()
    assert data["nickname"] == "阿黄" and data["gender"] == 2
    assert data["birthday"] == "2015-06-01" and data["bio"] == "换个签名"
    assert data["avatar_url"] == "https://cdn.example.com/a.jpg"


@pytest.mark.gen_test
async def test_nickname_length_is_checked_after_stripping(api, settings):
    user = await api.login()
    longest = "猫" * settings.nickname_max_length
    (await put_me(api, user, {"nickname": longest})).ok()
    (await put_me(api, user, {"nickname": longest + "猫"})).error(422, code=42200,
                                                                    field="nickname")
    (await put_me(api, user, {"nickname": "   "})).error(422, field="nickname")
    (await put_me(api, user, {"nickname": ""})).error(422, field="nickname")


@pytest.mark.gen_test
@pytest.mark.parametrize("nickname", ["赌博大王", "赌 😀 博", "ＦＵＣＫ", "加微信领猫"])
async def test_sensitive_nickname_is_refused(api, nickname):
    user = await api.login()
    (await put_me(api, user, {"nickname": nickname})).error(422, code=42202, field="nickname")
    assert (await api.get("/v1/users/me", token=user.token)).ok()["nickname"] != nickname


@pytest.mark.gen_test
@pytest.mark.parametrize("body,field", [
    ({"avatar_url": "http://insecure.example.com/a.png"}, "avatar_url"),
    ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
    ({"gender": 3}, "gender"),
    ({"gender": "1"}, "gender"),
    ({"birthday": (dt.date.today() + dt.timedelta(days=1)).isoformat()}, "birthday"),
    ({"birthday": "1850-01-01"}, "birthday"),
    ({"birthday": "not-a-date"}, "birthday"),
    ({"bio": "x" * 501}, "bio"),
    ({"role": "admin"}, "role"),
    ({"phone": "13800138000"}, "phone"),
])
async def test_invalid_profile_fields_are_field_errors(api, body, field):
    user = await api.login()
    (await put_me(api, user, body)).error(422, code=42200, field=field)


@pytest.mark.gen_test
async def test_malformed_and_oversized_profile_bodies(api, settings):
    user = await api.login()
    (await api.put("/v1/users/me", body=b"{nickname", token=user.token)).error(400, code=40001)
    huge = b'{"bio": "' + b"x" * settings.max_body_bytes + b'"}'
    (await api.put("/v1/users/me", body=huge, token=user.token)).error(413, code=41300)


# -- settings -----------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_settings_have_defaults_and_merge_partial_updates(api):
    user = await api.login()
    data = (await api.get("/v1/users/me/settings", token=user.token)).ok()
    assert data["notification_prefs"]["likes"] is True
    assert data["privacy_prefs"]["allow_messages_from"] == "everyone"
    changed = (await api.put("/v1/users/me/settings", token=user.token, json={
        "notification_prefs": {"likes": False},
        "privacy_prefs": {"allow_messages_from": "following"}})).ok()
    assert changed["notification_prefs"]["likes"] is False
    assert changed["notification_prefs"]["comments"] is True
    assert changed["privacy_prefs"]["allow_messages_from"] == "following"
    again = (await api.put("/v1/users/me/settings", token=user.token,
                           json={"privacy_prefs": {"show_bio": False}})).ok()
    assert again["notification_prefs"]["likes"] is False
    assert again["privacy_prefs"] == {**changed["privacy_prefs"], "show_bio": False}
    assert (await api.get("/v1/users/me/settings", token=user.token)).ok() == again


@pytest.mark.gen_test
@pytest.mark.parametrize("body,field", [
    ({"notification_prefs": {"spam": True}}, "notification_prefs.spam"),
    ({"notification_prefs": {"likes": "maybe"}}, "notification_prefs.likes"),
    ({"privacy_prefs": {"allow_messages_from": "friends"}}, "privacy_prefs.allow_messages_from"),
    ({"privacy_prefs": []}, "privacy_prefs"),
    ({"theme": "dark"}, "theme"),
])
async def test_unknown_or_wrong_settings_are_field_errors(api, body, field):
    user = await api.login()
    (await api.put("/v1/users/me/settings", token=user.token, json=body)).error(
        422, code=42200, field=field)


# -- other users --------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_public_profile_shows_only_public_fields(api, wechat):
    alice, bob = await api.login(), await api.login()
    wechat.set_phone("p-public", "13800138123")
    (await api.post("/v1/auth/phone", json={"code": "p-public"}, token=bob.token)).ok()
    (await put_me(api, bob, {"nickname": "Bob", "gender": 1, "bio": "hi"})).ok()
    reply = await api.get(f"/v1/users/{bob.user_id}", token=alice.token)
    data = reply.ok()
    assert data["id"] == bob.user_id and data["nickname"] == "Bob" and data["gender"] == 1
    for private in ("phone", "phone_bound", "openid", "unionid", "status", "last_login_at",
                    "banned_reason"):
        assert private not in data
    assert b"13800138123" not in reply.body and bob.openid.encode() not in reply.body


@pytest.mark.gen_test
async def test_privacy_settings_hide_fields_from_others(api):
    alice, bob = await api.login(), await api.login()
    (await put_me(api, bob, {"gender": 2, "birthday": "2000-02-02", "bio": "secret"})).ok()
    (await api.put("/v1/users/me/settings", token=bob.token, json={"privacy_prefs": {
        "show_gender": False, "show_birthday": False, "show_bio": False}})).ok()
    data = (await api.get(f"/v1/users/{bob.user_id}", token=alice.token)).ok()
    assert data["gender"] is None and data["birthday"] is None and data["bio"] is None
    (await api.put("/v1/users/me/settings", token=bob.token, json={"privacy_prefs": {
        "show_birthday": True}})).ok()
    data = (await api.get(f"/v1/users/{bob.user_id}", token=alice.token)).ok()
    assert data["birthday"] == "2000-02-02" and data["bio"] is None


@pytest.mark.gen_test
async def test_a_user_who_blocked_you_does_not_exist_for_you(api):
    alice, bob, carol = await api.login(), await api.login(), await api.login()
    (await api.post("/v1/users/me/blocks", json={"user_id": alice.user_id},
                    token=bob.token)).ok()
    (await api.get(f"/v1/users/{bob.user_id}", token=alice.token)).error(404, code=40400)
    (await api.get(f"/v1/users/{bob.user_id}", token=carol.token)).ok()
    # The blocker still sees the blocked user, marked as blocked.
    seen = (await api.get(f"/v1/users/{alice.user_id}", token=bob.token)).ok()
    assert seen["blocked_by_me"] is True


@pytest.mark.gen_test
async def test_unknown_and_banned_users_are_404(api):
    viewer, target = await api.login(), await api.login()
    (await api.get("/v1/users/999999999", token=viewer.token)).error(404, code=40400)
    (await api.get("/v1/users/99999999999999999999", token=viewer.token)).error(404)
    admin = await api.login(role="admin")
    (await api.post(f"/v1/admin/users/{target.user_id}/ban", json={"reason": "spam"},
                    token=admin.token)).ok()
    (await api.get(f"/v1/users/{target.user_id}", token=viewer.token)).error(404)


@pytest.mark.gen_test
async def test_public_profile_needs_a_login(api):
    user = await api.login()
    (await api.get(f"/v1/users/{user.user_id}")).error(401, code=40100)


# -- block list ---------------------------------------------------------------------------

async def block(api, user, target_id):
    return await api.post("/v1/users/me/blocks", json={"user_id": target_id}, token=user.token)


@pytest.mark.gen_test
async def test_blocking_is_idempotent_and_listed(api):
    me, other = await api.login(), await api.login()
    (await block(api, me, other.user_id)).ok()
    (await block(api, me, other.user_id)).ok()
    page = (await api.get("/v1/users/me/blocks", token=me.token)).ok()
    assert page["total"] == 1 and [i["user_id"] for i in page["items"]] == [other.user_id]
    assert set(page) == {"items", "total", "page", "limit", "totalPages"}


@pytest.mark.gen_test
async def test_cannot_block_yourself_or_a_stranger_that_does_not_exist(api):
    me = await api.login()
    (await block(api, me, me.user_id)).error(422, code=42200, field="user_id")
    (await block(api, me, 999_999_999)).error(404, code=40400)
    (await block(api, me, 0)).error(422, field="user_id")
    (await api.post("/v1/users/me/blocks", json={"user_id": "abc"}, token=me.token)).error(
        422, field="user_id")


@pytest.mark.gen_test
async def test_unblock_removes_the_block_and_is_idempotent(api):
    me, other = await api.login(), await api.login()
    (await block(api, me, other.user_id)).ok()
    (await api.get(f"/v1/users/{me.user_id}", token=other.token)).error(404)
    (await api.delete(f"/v1/users/me/blocks/{other.user_id}", token=me.token)).ok()
    (await api.delete(f"/v1/users/me/blocks/{other.user_id}", token=me.token)).ok()
    (await api.get(f"/v1/users/{me.user_id}", token=other.token)).ok()
    assert (await api.get("/v1/users/me/blocks", token=me.token)).ok()["total"] == 0


@pytest.mark.gen_test
async def test_block_list_is_paginated_and_private(api):
    me, stranger = await api.login(), await api.login()
    others = [await api.login() for _ in range(3)]
    for other in others:
        (await block(api, me, other.user_id)).ok()
    first = (await api.get("/v1/users/me/blocks?page=1&limit=2", token=me.token)).ok()
    second = (await api.get("/v1/users/me/blocks?page=2&limit=2", token=me.token)).ok()
    assert first["total"] == 3 and first["totalPages"] == 2
    listed = [i["user_id"] for i in first["items"] + second["items"]]
    assert sorted(listed) == sorted(o.user_id for o in others)
    assert (await api.get("/v1/users/me/blocks", token=stranger.token)).ok()["total"] == 0
    (await api.get("/v1/users/me/blocks?limit=101", token=me.token)).error(422, field="limit")

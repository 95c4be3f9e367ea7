"""WeChat login and phone binding through the gateway, against the fake WeChat server."""
from __future__ import annotations

import asyncio
import logging

import pytest

from pawhome.integrations.wechat import encrypt_user_data
from settings import Settings
from tests.fakes.wechat import openid_for, session_key_for


@pytest.fixture
def settings():
    return Settings(wechat_timeout=0.5)


async def wechat_login(api, code: str, **extra):
    return await api.post("/v1/auth/wechat-login", json={"code": code, **extra})


@pytest.mark.gen_test
async def test_first_login_creates_the_user_and_the_second_finds_it(api, wechat):
    first = (await wechat_login(api, "code-first-login")).ok()
    assert first["is_new_user"] is True and first["access_token"] and first["refresh_token"]
    second = (await wechat_login(api, "code-first-login")).ok()
    assert second["is_new_user"] is False and second["user_id"] == first["user_id"]
    me = (await api.get("/v1/users/me", token=second["access_token"])).ok()
    assert me["id"] == first["user_id"]


@pytest.mark.gen_test
async def test_session_key_stays_server_side_and_out_of_logs(api, wechat, resources, caplog):
    caplog.set_level(logging.DEBUG)
    reply = await wechat_login(api, "code-keep-key")
    data = reply.ok()
    session_key = session_key_for("code-keep-key")
    assert session_key.encode() not in reply.body
    assert "session_key" not in data
    stored = await resources.cache.redis.get(
        resources.cache.key("wechat", "session_key", data["user_id"]))
    assert stored.decode() == session_key
    ttl = await resources.cache.redis.ttl(
        resources.cache.key("wechat", "session_key", data["user_id"]))
    assert 0 < ttl <= resources.settings.wechat_session_key_ttl
    assert session_key not in caplog.text


@pytest.mark.gen_test
async def test_encrypted_profile_fills_a_new_users_nickname_and_avatar(api, wechat, settings):
    code = "code-with-profile"
    data, iv = encrypt_user_data(session_key_for(code), {
        "nickName": "  旺财🐕 ", "avatarUrl": "https://thirdwx.qlogo.cn/a.png",
        "watermark": {"appid": settings.wechat_appid, "timestamp": 1}})
    login = (await wechat_login(api, code, encryptedData=data, iv=iv)).ok()
    me = (await api.get("/v1/users/me", token=login["access_token"])).ok()
    assert me["nickname"] == "旺财🐕"
    assert me["avatar_url"] == "https://thirdwx.qlogo.cn/a.png"


@pytest.mark.gen_test
async def test_encrypted_profile_does_not_overwrite_an_existing_user(api, wechat, settings):
    code = "code-existing-profile"
    login = (await wechat_login(api, code)).ok()
    (await api.put("/v1/users/me", json={"nickname": "我自己"}, token=login["access_token"])).ok()
    data, iv = encrypt_user_data(session_key_for(code), {
        "nickName": "别人", "watermark": {"appid": settings.wechat_appid}})
    again = (await wechat_login(api, code, encryptedData=data, iv=iv)).ok()
    me = (await api.get("/v1/users/me", token=again["access_token"])).ok()
    assert me["nickname"] == "我自己"


@pytest.mark.gen_test
async def test_encrypted_data_for_another_app_is_422(api, wechat):
    code = "code-foreign-app"
    data, iv = encrypt_user_data(session_key_for(code), {
        "nickName": "x", "watermark": {"appid": "wx-someone-else"}})
    (await wechat_login(api, code, encryptedData=data, iv=iv)).error(
        422, code=42200, field="encryptedData")


@pytest.mark.gen_test
async def test_encrypted_data_without_iv_is_422(api, wechat):
    (await wechat_login(api, "code-no-iv", encryptedData="QUJD")).error(422, field="iv")


@pytest.mark.gen_test
async def test_invalid_code_is_a_clear_400(api, wechat):
    body = (await wechat_login(api, "invalid")).error(400, code=40010, field="code")
    assert "invalid" in body["message"].lower()


@pytest.mark.gen_test
async def test_wechat_rate_limit_is_429_with_retry_after(api, wechat):
    reply = await wechat_login(api, "ratelimit")
    reply.error(429, code=42901)
    assert int(reply.headers["Retry-After"]) > 0


@pytest.mark.gen_test
async def test_wechat_timeout_is_503(api, wechat):
    wechat.slow_seconds = 2.0
    body = (await wechat_login(api, "slow")).error(503, code=50304)
    assert "in time" in body["message"]


@pytest.mark.gen_test
async def test_malformed_wechat_reply_is_503_with_its_own_code(api, wechat):
    body = (await wechat_login(api, "malformed")).error(503, code=50307)
    assert "JSON" in body["message"]


@pytest.mark.gen_test
async def test_other_wechat_errors_name_the_errcode(api, wechat):
    wechat.fail_next("/sns/jscode2session", 200, {"errcode": 40226, "errmsg": "high risk"})
    body = (await wechat_login(api, "code-risky")).error(400, code=40020)
    assert "40226" in body["message"]


@pytest.mark.gen_test
async def test_banned_user_cannot_log_in(api, wechat, resources):
    login = (await wechat_login(api, "code-to-be-banned")).ok()
    admin = await api.login(role="admin")
    (await api.post(f"/v1/admin/users/{login['user_id']}/ban", json={"reason": "spam"},
                    token=admin.token)).ok()
    (await wechat_login(api, "code-to-be-banned")).error(403, code=40301)


@pytest.mark.gen_test
@pytest.mark.parametrize("body,status,field", [
    ({}, 422, "code"),
    ({"code": ""}, 422, "code"),
    ({"code": "c" * 129}, 422, "code"),
    ({"code": "code-x", "openid": "o-forged"}, 422, "openid"),
    ({"code": 123}, 422, "code"),
])
async def test_bad_login_bodies_are_field_errors(api, wechat, body, status, field):
    (await api.post("/v1/auth/wechat-login", json=body)).error(status, field=field)


@pytest.mark.gen_test
async def test_malformed_and_oversized_login_bodies(api, wechat, settings):
    (await api.post("/v1/auth/wechat-login", body=b'{"code": "x"')).error(400, code=40001)
    (await api.post("/v1/auth/wechat-login", body=b'["code"]')).error(400, code=40001)
    huge = b'{"code": "' + b"x" * settings.max_body_bytes + b'"}'
    (await api.post("/v1/auth/wechat-login", body=huge)).error(413, code=41300)


@pytest.mark.gen_test
async def test_login_is_limited_per_ip(api, wechat):
    for i in range(10):
        (await wechat_login(api, f"code-limit-{i}")).ok()
    reply = await wechat_login(api, "code-limit-11")
    reply.error(429, code=42900)
    assert int(reply.headers["Retry-After"]) >= 1


# -- phone binding ------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_phone_binding_marks_the_profile(api, wechat):
    me = await api.login()
    wechat.set_phone("p-bind", "13800138001")
    data = (await api.post("/v1/auth/phone", json={"code": "p-bind"}, token=me.token)).ok()
    assert data["phone_bound"] is True and data["phone"] == "138****8001"
    profile = (await api.get("/v1/users/me", token=me.token)).ok()
    assert profile["phone_bound"] is True and "13800138001" not in str(profile)


@pytest.mark.gen_test
async def test_phone_bound_to_another_user_is_409(api, wechat):
    wechat.set_phone("p-a", "13800138002")
    wechat.set_phone("p-b", "13800138002")
    alice, bob = await api.login(), await api.login()
    (await api.post("/v1/auth/phone", json={"code": "p-a"}, token=alice.token)).ok()
    (await api.post("/v1/auth/phone", json={"code": "p-b"}, token=bob.token)).error(
        409, code=40902)
    # Binding your own number again is fine.
    (await api.post("/v1/auth/phone", json={"code": "p-a"}, token=alice.token)).ok()


@pytest.mark.gen_test
async def test_phone_binding_needs_a_login_and_a_valid_code(api, wechat):
    (await api.post("/v1/auth/phone", json={"code": "p-x"})).error(401, code=40100)
    me = await api.login()
    (await api.post("/v1/auth/phone", json={"code": "invalid"}, token=me.token)).error(
        400, code=40010)


@pytest.mark.gen_test
async def test_fake_derives_openids_from_codes(api, wechat, resources):
    login = (await wechat_login(api, "code-openid-check")).ok()
    async with resources.db.session() as session:
        from models.users import User
        user = await session.get(User, login["user_id"])
    assert user.openid == openid_for("code-openid-check")


@pytest.mark.gen_test
async def test_concurrent_first_logins_create_one_user(api, wechat):
    replies = await asyncio.gather(*(wechat_login(api, "code-race-first") for _ in range(4)))
    data = [r.ok() for r in replies]
    assert len({d["user_id"] for d in data}) == 1
    assert sum(d["is_new_user"] for d in data) == 1

"""The WeChat client against the fake WeChat server: errcode mapping, the shared
access_token (single flight, never force_refresh), expired-token retry, encryptedData."""
from __future__ import annotations

import asyncio
import logging

import pytest

from pawhome.integrations.wechat import WeChatClient, decrypt_user_data, encrypt_user_data
from pawhome.platform import errors
from pawhome.platform.resources import Resources
from settings import Settings
from tests.fakes.wechat import openid_for, session_key_for


@pytest.mark.gen_test
async def test_code_to_session_returns_openid_and_session_key(resources, wechat):
    session = await WeChatClient(resources).code_to_session("code-abc")
    assert session.openid == openid_for("code-abc")
    assert session.session_key == session_key_for("code-abc")
    sent = wechat.requests_to("/sns/jscode2session")[-1].query
    assert sent["appid"] == resources.settings.wechat_appid
    assert sent["grant_type"] == "authorization_code" and sent["js_code"] == "code-abc"
    assert session.session_key not in repr(session)


@pytest.mark.gen_test
@pytest.mark.parametrize("code", ["invalid", "used"])
async def test_invalid_or_used_code_is_invalid_code(resources, wechat, code):
    with pytest.raises(errors.InvalidCode) as caught:
        await WeChatClient(resources).code_to_session(code)
    assert caught.value.status == 400


@pytest.mark.gen_test
async def test_wechat_rate_limit_is_429_with_retry_after(resources, wechat):
    with pytest.raises(errors.WeChatRateLimited) as caught:
        await WeChatClient(resources).code_to_session("ratelimit")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"]


@pytest.mark.gen_test
async def test_slow_wechat_times_out_as_unavailable(wechat, io_loop):
    res = Resources(Settings(wechat_timeout=0.5))
    wechat.slow_seconds = 2.0
    try:
        started = io_loop.time()
        with pytest.raises(errors.WeChatUnavailable) as caught:
            await WeChatClient(res).code_to_session("slow")
        assert io_loop.time() - started < 1.8
        assert caught.value.status == 503 and "in time" in caught.value.message
    finally:
        await res.close()


@pytest.mark.gen_test
async def test_html_reply_is_a_bad_reply_not_a_crash(resources, wechat):
    with pytest.raises(errors.WeChatBadReply) as caught:
        await WeChatClient(resources).code_to_session("malformed")
    assert caught.value.status == 503 and "not JSON" in caught.value.message


@pytest.mark.gen_test
async def test_reply_without_openid_is_a_bad_reply(resources, wechat):
    with pytest.raises(errors.WeChatBadReply, match="openid"):
        await WeChatClient(resources).code_to_session("noopenid")


@pytest.mark.gen_test
async def test_wechat_5xx_and_busy_are_unavailable(resources, wechat):
    wechat.fail_next("/sns/jscode2session", 502, "bad gateway")
    with pytest.raises(errors.WeChatUnavailable, match="502"):
        await WeChatClient(resources).code_to_session("code-x")
    with pytest.raises(errors.WeChatUnavailable, match="busy"):
        await WeChatClient(resources).code_to_session("busy")


@pytest.mark.gen_test
async def test_other_errcodes_name_the_errcode(resources, wechat):
    wechat.fail_next("/sns/jscode2session", 200, {"errcode": 40226, "errmsg": "high risk user"})
    with pytest.raises(errors.WeChatError) as caught:
        await WeChatClient(resources).code_to_session("code-x")
    assert caught.value.status == 400 and "40226" in caught.value.message


@pytest.mark.gen_test
async def test_unreachable_wechat_is_unavailable(wechat):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    res = Resources(Settings(wechat_api_base=f"http://127.0.0.1:{port}", wechat_timeout=1))
    try:
        with pytest.raises(errors.WeChatUnavailable, match="unreachable"):
            await WeChatClient(res).code_to_session("code-x")
    finally:
        await res.close()


# -- the shared access_token ----------------------------------------------------------------

@pytest.mark.gen_test
async def test_twenty_concurrent_callers_on_an_empty_cache_fetch_the_token_once(
        resources, wechat):
    wechat.token_delay = 0.2  # keep the fetch in flight while the others arrive
    clients = [WeChatClient(resources) for _ in range(20)]
    tokens = await asyncio.gather(*(c.access_token() for c in clients))
    assert len(set(tokens)) == 1
    assert wechat.stable_token_calls == 1


@pytest.mark.gen_test
async def test_token_is_cached_with_ttl_expires_in_minus_margin(resources, wechat):
    wechat.token_expires_in = 7200
    token = await WeChatClient(resources).access_token()
    assert await WeChatClient(resources).access_token() == token
    assert wechat.stable_token_calls == 1
    ttl = await resources.cache.redis.ttl(resources.cache.key("wechat", "access_token"))
    margin = resources.settings.wechat_token_refresh_margin
    assert 7200 - margin - 5 <= ttl <= 7200 - margin


@pytest.mark.gen_test
async def test_stable_token_is_called_in_normal_mode_only(resources, wechat):
    client = WeChatClient(resources)
    await client.access_token()
    wechat.expire_token(await client.access_token())
    await client.call("POST", "/cgi-bin/message/subscribe/send",
                      json={"touser": "o1", "template_id": "t1", "data": {}})
    await resources.cache.redis.delete(resources.cache.key("wechat", "access_token"))
    assert await client.refresh_token_if_due() is True
    bodies = wechat.stable_token_bodies
    assert len(bodies) == 3
    for body in bodies:
        assert body["grant_type"] == "client_credential"
        assert body["force_refresh"] is False


@pytest.mark.gen_test
async def test_expired_token_is_replaced_once_and_the_call_retried(resources, wechat):
    client = WeChatClient(resources)
    old = await client.access_token()
    wechat.expire_token(old)
    reply = await client.call("POST", "/cgi-bin/message/subscribe/send",
                              json={"touser": "o1", "template_id": "t1", "data": {}})
    assert reply["errcode"] == 0
    assert wechat.stable_token_calls == 2
    sends = wechat.requests_to("/cgi-bin/message/subscribe/send")
    assert [r.query["access_token"] for r in sends] == [old, await client.access_token()]
    assert sends[1].query["access_token"] != old


@pytest.mark.gen_test
async def test_many_callers_hitting_an_expired_token_refetch_it_once(resources, wechat):
    first = await WeChatClient(resources).access_token()
    wechat.expire_token(first)
    wechat.token_delay = 0.1
    replies = await asyncio.gather(*(
        WeChatClient(resources).call("POST", "/cgi-bin/message/subscribe/send",
                                     json={"touser": f"o{i}", "template_id": "t", "data": {}})
        for i in range(10)))
    assert all(r["errcode"] == 0 for r in replies)
    assert wechat.stable_token_calls == 2  # the first fetch and one replacement
    assert len(wechat.sent_messages) == 10


@pytest.mark.gen_test
async def test_caller_uses_a_token_another_process_already_replaced(resources, wechat):
    client = WeChatClient(resources)
    old = await client.access_token()
    wechat.expire_token(old)
    # Another process replaced the shared token after our call began.
    await resources.cache.redis.delete(resources.cache.key("wechat", "access_token"))
    newer = await WeChatClient(resources).access_token()
    assert newer != old
    calls_before = wechat.stable_token_calls
    token = await client._token_after_rejection(old)
    assert token == newer and wechat.stable_token_calls == calls_before


@pytest.mark.gen_test
async def test_still_rejected_after_one_retry_is_an_error_not_a_loop(resources, wechat):
    client = WeChatClient(resources)
    wechat.fail_next("/cgi-bin/message/subscribe/send", 200,
                     {"errcode": 40001, "errmsg": "invalid credential"}, times=5)
    with pytest.raises(errors.WeChatError, match="40001"):
        await client.call("POST", "/cgi-bin/message/subscribe/send",
                          json={"touser": "o1", "template_id": "t1", "data": {}})
    assert len(wechat.requests_to("/cgi-bin/message/subscribe/send")) == 2


@pytest.mark.gen_test
async def test_refresh_if_due_skips_a_fresh_token(resources, wechat):
    client = WeChatClient(resources)
    await client.access_token()
    assert await client.refresh_token_if_due() is False
    assert wechat.stable_token_calls == 1


@pytest.mark.gen_test
async def test_refresh_if_due_refreshes_a_token_about_to_expire(resources, wechat):
    client = WeChatClient(resources)
    await client.access_token()
    await resources.cache.redis.expire(resources.cache.key("wechat", "access_token"), 30)
    assert await client.refresh_token_if_due() is True
    assert wechat.stable_token_calls == 2


@pytest.mark.gen_test
async def test_get_phone_number_uses_the_shared_token(resources, wechat):
    wechat.set_phone("p-1", "13800138000")
    phone = await WeChatClient(resources).get_phone_number("p-1")
    assert phone == "13800138000"
    request = wechat.requests_to("/wxa/business/getuserphonenumber")[-1]
    assert request.query["access_token"] == await WeChatClient(resources).access_token()
    assert request.body == {"code": "p-1"}


@pytest.mark.gen_test
async def test_foreign_phone_number_keeps_its_country_code(resources, wechat):
    wechat.set_phone("p-hk", "61234567", country="852")
    assert await WeChatClient(resources).get_phone_number("p-hk") == "+85261234567"


# -- encryptedData --------------------------------------------------------------------------

APPID = Settings().wechat_appid


def test_encrypted_data_round_trips_with_the_session_key():
    key = session_key_for("code-enc")
    payload = {"nickName": "小白🐶", "avatarUrl": "https://example.com/a.png",
               "watermark": {"appid": APPID, "timestamp": 1}}
    data, iv = encrypt_user_data(key, payload)
    assert decrypt_user_data(key, data, iv, APPID) == payload


def test_encrypted_data_for_another_app_is_refused():
    key = session_key_for("code-enc")
    data, iv = encrypt_user_data(key, {"nickName": "x", "watermark": {"appid": "wx-other"}})
    with pytest.raises(errors.ValidationFailed) as caught:
        decrypt_user_data(key, data, iv, APPID)
    assert caught.value.errors[0]["field"] == "encryptedData"


def test_encrypted_data_with_the_wrong_session_key_is_refused():
    data, iv = encrypt_user_data(session_key_for("code-a"),
                                 {"nickName": "x", "watermark": {"appid": APPID}})
    with pytest.raises(errors.ValidationFailed):
        decrypt_user_data(session_key_for("code-b"), data, iv, APPID)


@pytest.mark.parametrize("data,iv", [("not base64!!", "AAAAAAAAAAAAAAAAAAAAAA=="),
                                     ("QUJD", "AAAAAAAAAAAAAAAAAAAAAA=="),
                                     ("A" * 24, "QUJD")])
def test_garbled_encrypted_data_is_a_validation_error(data, iv):
    with pytest.raises(errors.ValidationFailed):
        decrypt_user_data(session_key_for("code-a"), data, iv, APPID)


@pytest.mark.gen_test
async def test_secrets_in_wechat_urls_never_reach_a_log(resources, wechat, caplog):
    caplog.set_level(logging.DEBUG)
    client = WeChatClient(resources)
    session = await client.code_to_session("code-secret-log")
    await client.call("POST", "/cgi-bin/message/subscribe/send",
                      json={"touser": "o1", "template_id": "t1", "data": {}})
    token = await client.access_token()
    ours = [r for r in caplog.records if r.name != "tornado.access"]  # the fake's own log
    text = "\n".join(r.getMessage() for r in ours)
    assert ours  # the client did log something (the token refresh)
    for secret in (resources.settings.wechat_secret, "code-secret-log", session.session_key,
                   token):
        assert secret not in text

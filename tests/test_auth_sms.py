"""SMS login: one-time codes hashed in Redis, resend interval, attempt limit, providers."""
from __future__ import annotations

import asyncio
import logging
import secrets

import pytest

from pawhome.identity import sms
from pawhome.platform import errors
from settings import Settings
from tests.fixtures_wechat import SMS_API_KEY


@pytest.fixture
def settings():
    return Settings(sms_provider="http", sms_api_key=SMS_API_KEY)


def new_phone() -> str:
    """A number no other test uses (each test gets its own code and resend window)."""
    return f"137{secrets.randbelow(10 ** 8):08d}"


async def send(api, phone):
    return await api.post("/v1/auth/sms/send", json={"phone": phone})


async def sms_login(api, phone, code):
    return await api.post("/v1/auth/sms/login", json={"phone": phone, "code": code})


@pytest.mark.gen_test
async def test_sms_login_creates_the_user_then_finds_it(api, sms_gateway):
    phone = new_phone()
    sent = (await send(api, phone)).ok()
    assert sent["expires_in"] > 0 and sent["resend_in"] > 0
    first = (await sms_login(api, phone, sms_gateway.last_code(phone))).ok()
    assert first["is_new_user"] is True
    me = (await api.get("/v1/users/me", token=first["access_token"])).ok()
    assert me["phone_bound"] is True
    await clear_resend(api, phone)
    (await send(api, phone)).ok()
    second = (await sms_login(api, phone, sms_gateway.last_code(phone))).ok()
    assert second["is_new_user"] is False and second["user_id"] == first["user_id"]


async def clear_resend(api, phone):
    resources = api.app.settings["resources"]
    await resources.cache.redis.delete(sms.resend_key(resources.cache, phone))


@pytest.mark.gen_test
async def test_code_is_six_digits_and_stored_only_as_a_hash(api, sms_gateway, resources):
    phone = new_phone()
    (await send(api, phone)).ok()
    code = sms_gateway.last_code(phone)
    assert len(code) == 6 and code.isdigit()
    key = sms.code_key(resources.cache, phone)
    stored = await resources.cache.redis.hgetall(key)
    assert code.encode() not in b"".join(list(stored.keys()) + list(stored.values()))
    assert phone not in key
    assert 0 < await resources.cache.redis.ttl(key) <= resources.settings.sms_code_ttl
    message = sms_gateway.messages[-1]
    assert message["phone"] == phone and message["template"] == "login_code"


@pytest.mark.gen_test
async def test_resend_inside_the_interval_is_429(api, sms_gateway):
    phone = new_phone()
    (await send(api, phone)).ok()
    reply = await send(api, phone)
    reply.error(429, code=42900)
    assert 1 <= int(reply.headers["Retry-After"]) <= 60
    assert len(sms_gateway.codes_for(phone)) == 1


@pytest.mark.gen_test
async def test_wrong_code_n_times_burns_it(api, sms_gateway, settings):
    phone = new_phone()
    (await send(api, phone)).ok()
    right = sms_gateway.last_code(phone)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(settings.sms_max_attempts):
        (await sms_login(api, phone, wrong)).error(400, code=40010, field="code")
    body = (await sms_login(api, phone, right)).error(400, code=40010)
    assert "request a new" in body["message"].lower()


@pytest.mark.gen_test
async def test_right_code_after_a_few_wrong_ones_still_works(api, sms_gateway, settings):
    phone = new_phone()
    (await send(api, phone)).ok()
    right = sms_gateway.last_code(phone)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(settings.sms_max_attempts - 1):
        (await sms_login(api, phone, wrong)).error(400, code=40010)
    (await sms_login(api, phone, right)).ok()


@pytest.mark.gen_test
async def test_a_code_logs_in_once(api, sms_gateway):
    phone = new_phone()
    (await send(api, phone)).ok()
    code = sms_gateway.last_code(phone)
    replies = await asyncio.gather(sms_login(api, phone, code), sms_login(api, phone, code))
    assert sorted(r.status for r in replies) == [200, 400]
    (await sms_login(api, phone, code)).error(400, code=40010)


@pytest.mark.gen_test
async def test_login_without_a_sent_code_is_refused(api, sms_gateway):
    (await sms_login(api, new_phone(), "123456")).error(400, code=40010, field="code")


@pytest.mark.gen_test
async def test_provider_failure_is_503_and_the_user_may_retry_at_once(api, sms_gateway):
    phone = new_phone()
    sms_gateway.fail_next(500)
    (await send(api, phone)).error(503, code=50305)
    (await send(api, phone)).ok()
    assert len(sms_gateway.codes_for(phone)) == 1


@pytest.mark.gen_test
async def test_wrong_api_key_is_503_not_a_crash(sms_gateway):
    from pawhome.platform.resources import Resources
    res = Resources(Settings(sms_provider="http", sms_api_key="wrong-key"))
    try:
        with pytest.raises(errors.SmsUnavailable):
            await sms.send_login_code(res, new_phone())
        assert sms_gateway.rejected_auth == 1
    finally:
        await res.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("path,body,field", [
    ("/v1/auth/sms/send", {"phone": "12345"}, "phone"),
    ("/v1/auth/sms/send", {"phone": "1380013800a"}, "phone"),
    ("/v1/auth/sms/send", {"phone": "13800138000", "code": "1"}, "code"),
    ("/v1/auth/sms/login", {"phone": "13800138000", "code": "12345"}, "code"),
    ("/v1/auth/sms/login", {"phone": "13800138000", "code": "12345a"}, "code"),
    ("/v1/auth/sms/login", {"phone": "13800138000"}, "code"),
])
async def test_malformed_sms_bodies_are_field_errors(api, sms_gateway, path, body, field):
    (await api.post(path, json=body)).error(422, code=42200, field=field)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.gen_test
@pytest.mark.parametrize("mode,shows_code", [("development", True), ("production", False)])
async def test_log_provider_shows_the_code_only_outside_production(mode, shows_code):
    handler = _Records()
    logger = logging.getLogger("pawhome.identity.sms")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        await sms.LogSmsSender(Settings(mode=mode)).send_login_code("13800138000", "424242")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    (record,) = handler.records
    assert record.fields["phone"] == "138****8000"
    assert ("dev_code" in record.fields) is shows_code
    assert "424242" not in record.getMessage() and "13800138000" not in record.getMessage()

"""SMS login codes: issuing and checking one-time codes, and the SMS sender adapters.

A code is six digits, stored only as an HMAC (keyed by the JWT secret, so a leaked Redis dump
cannot be brute-forced offline) with a TTL, a resend interval and an attempt limit after which
it is burned. Senders: "log" (development: logs that a code was sent; outside production the
code itself goes into the log record's fields) and "http" (a provider's REST API).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any, Protocol

import httpx

from pawhome.platform.cache import Cache
from pawhome.platform.errors import InvalidCode, RateLimited, SmsUnavailable, field_error
from pawhome.platform.logs import mask_phone
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.identity.sms")

CODE_DIGITS = 6

# KEYS[1]: the code hash. ARGV[1]: max attempts. Counts one attempt atomically and returns
# {attempts, stored hmac}, or nil if there is no live code.
_ATTEMPT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {n, redis.call('HGET', KEYS[1], 'mac')}
"""
# Consume the code only if it is still the one we checked (single use under concurrency).
_CONSUME_LUA = """
if redis.call('HGET', KEYS[1], 'mac') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SmsSender(Protocol):
    async def send_login_code(self, phone: str, code: str) -> None: ...


class LogSmsSender:
    """Development sender: nothing leaves the machine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send_login_code(self, phone: str, code: str) -> None:
        fields: dict[str, Any] = {"phone": mask_phone(phone)}
        if self.settings.mode != "production":
            fields["dev_code"] = code  # lets a developer log in without a phone
        log.info("login code sent by the log SMS provider", extra={"fields": fields})


class HttpSmsSender:
    """A provider's REST API: POST {sms_api_base}/send with a bearer API key."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    async def send_login_code(self, phone: str, code: str) -> None:
        url = self.settings.sms_api_base.rstrip("/") + "/send"
        try:
            response = await self.http.post(
                url, json={"phone": phone, "template": "login_code", "params": {"code": code}},
                headers={"Authorization": f"Bearer {self.settings.sms_api_key}"},
                timeout=self.settings.wechat_timeout)
        except httpx.HTTPError as error:
            raise SmsUnavailable("The SMS provider is unreachable") from error
        if response.status_code >= 300:
            log.warning("SMS provider refused a send: HTTP %s", response.status_code)
            raise SmsUnavailable(f"The SMS provider answered HTTP {response.status_code}")


def make_sender(resources: Resources) -> SmsSender:
    settings = resources.settings
    if settings.sms_provider == "http":
        return HttpSmsSender(settings, resources.http)
    return LogSmsSender(settings)


def _phone_id(phone: str) -> str:
    # Keys name a hash of the number, not the number: Redis keys are PII-free.
    return hashlib.sha256(phone.encode()).hexdigest()[:24]


def _mac(secret: str, phone: str, code: str) -> str:
    return hmac.new(secret.encode(), f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def code_key(cache: Cache, phone: str) -> str:
    return cache.key("sms", "code", _phone_id(phone))


def resend_key(cache: Cache, phone: str) -> str:
    return cache.key("sms", "resend", _phone_id(phone))


async def send_login_code(resources: Resources, phone: str) -> dict[str, int]:
    """Issue a new code for `phone` and send it; 429 inside the resend interval."""
    settings, redis = resources.settings, resources.cache.redis
    gate = resend_key(resources.cache, phone)
    if not await redis.set(gate, 1, nx=True, ex=settings.sms_resend_seconds):
        retry = max(1, await redis.ttl(gate))
        raise RateLimited(f"A code was sent recently; retry in {retry}s",
                          headers={"Retry-After": str(retry)})
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    key = code_key(resources.cache, phone)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping={"mac": _mac(settings.jwt_secret, phone, code), "attempts": 0})
        pipe.expire(key, settings.sms_code_ttl)
        await pipe.execute()
    try:
        await make_sender(resources).send_login_code(phone, code)
    except Exception:
        await redis.delete(key, gate)  # not sent: let the user ask again at once
        raise
    return {"expires_in": settings.sms_code_ttl, "resend_in": settings.sms_resend_seconds}


async def verify_login_code(resources: Resources, phone: str, code: str) -> None:
    """Consume the code if it matches; each wrong try counts, and the last allowed wrong try
    burns the code. Raises InvalidCode (400) otherwise."""
    settings = resources.settings
    key = code_key(resources.cache, phone)
    state = await resources.cache.script(_ATTEMPT_LUA)(keys=[key])
    if state is None:
        raise InvalidCode("No valid code for this number; request a new one",
                          errors=[field_error("code", "expired or never sent")])
    attempts, stored = int(state[0]), state[1]
    stored = stored.decode() if isinstance(stored, bytes) else str(stored or "")
    expected = _mac(settings.jwt_secret, phone, code)
    if hmac.compare_digest(stored, expected) and attempts <= settings.sms_max_attempts:
        if await resources.cache.script(_CONSUME_LUA)(keys=[key], args=[stored]):
            return
        raise InvalidCode(errors=[field_error("code", "already used")])
    if attempts >= settings.sms_max_attempts:
        await resources.cache.redis.delete(key)
        raise InvalidCode("Too many wrong codes; request a new one",
                          errors=[field_error("code", "too many attempts")])
    raise InvalidCode("Wrong code", errors=[field_error("code", "wrong code")])

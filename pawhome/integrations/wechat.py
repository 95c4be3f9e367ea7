"""The WeChat server API client: login codes, phone numbers, the shared access_token.

Every call goes through `resources.http` (httpx) to `settings.wechat_api_base`, with a
timeout, and WeChat's errcodes become our error classes (invalid code -> 400, WeChat rate
limit -> 429, timeouts/5xx/garbled replies -> 503). The access_token is shared by every
gateway and worker process through Redis and fetched by one holder of a Redis lock at a time
from `cgi-bin/stable_token` in normal mode — never `force_refresh`, which is limited to a few
calls a day and invalidates every other holder's token. docs/auth.md explains the scheme.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pawhome.platform import codec
from pawhome.platform.errors import (
    InvalidCode,
    ValidationFailed,
    WeChatBadReply,
    WeChatError,
    WeChatRateLimited,
    WeChatUnavailable,
    field_error,
)
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.integrations.wechat")

INVALID_CODE_ERRCODES = {40029, 40163}  # invalid code / code already used
RATE_LIMIT_ERRCODES = {45011}
EXPIRED_TOKEN_ERRCODES = {40001, 42001}  # invalid credential / access_token expired
BUSY_ERRCODES = {-1}  # "system busy": WeChat's own transient failure

# Compare-and-delete: release a lock only if we still hold it.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class WeChatSession:
    """What jscode2session returns. session_key must never leave the server or reach a log."""
    openid: str
    session_key: str
    unionid: str | None = None

    def __repr__(self) -> str:
        return f"WeChatSession(openid={self.openid[:6]}…, unionid={bool(self.unionid)})"


class WeChatClient:
    """One process's view of the WeChat API; cheap to build per request."""

    def __init__(self, resources: Resources) -> None:
        self.settings = resources.settings
        self.cache = resources.cache
        self.http: httpx.AsyncClient = resources.http
        self.base = self.settings.wechat_api_base.rstrip("/")
        self.timeout = self.settings.wechat_timeout
        self.token_key = self.cache.key("wechat", "access_token")
        self.lock_key = self.cache.key("wechat", "access_token", "lock")

    # -- the API calls --------------------------------------------------------------------
    async def code_to_session(self, code: str) -> WeChatSession:
        """Exchange a wx.login() code for the user's openid and session_key."""
        reply = await self._request("GET", "/sns/jscode2session", params={
            "appid": self.settings.wechat_appid, "secret": self.settings.wechat_secret,
            "js_code": code, "grant_type": "authorization_code"})
        raise_for_errcode(reply)
        openid, session_key = reply.get("openid"), reply.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str) \
                or not session_key:
            raise WeChatBadReply("WeChat's login reply lacks openid or session_key")
        unionid = reply.get("unionid")
        return WeChatSession(openid, session_key, unionid if isinstance(unionid, str) else None)

    async def get_phone_number(self, code: str) -> str:
        """The phone number behind a getPhoneNumber button code: 13800138000 for +86
        numbers, +<country code><number> otherwise."""
        reply = await self.call("POST", "/wxa/business/getuserphonenumber", json={"code": code})
        info = reply.get("phone_info")
        if not isinstance(info, dict):
            raise WeChatBadReply("WeChat's phone reply lacks phone_info")
        pure = info.get("purePhoneNumber") or info.get("phoneNumber")
        country = str(info.get("countryCode") or "86")
        if not isinstance(pure, str) or not pure.strip("+").isdigit():
            raise WeChatBadReply("WeChat's phone reply lacks a phone number")
        watermark = info.get("watermark")
        if isinstance(watermark, dict) and watermark.get("appid") not in (
                None, self.settings.wechat_appid):
            raise WeChatError("The phone number was issued for another app")
        return pure if country == "86" else f"+{country}{pure.lstrip('+')}"

    async def call(self, method: str, path: str, json: Any = None,
                   params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A token-authenticated call (subscribe messages, phone numbers, ...).

        If WeChat says the token is invalid or expired (40001/42001), the shared token is
        replaced (by at most one caller) and the call is retried once.
        """
        token = await self.access_token()
        reply = await self._request(method, path, json=json,
                                    params={**(params or {}), "access_token": token})
        if _errcode(reply) in EXPIRED_TOKEN_ERRCODES:
            token = await self._token_after_rejection(token)
            reply = await self._request(method, path, json=json,
                                        params={**(params or {}), "access_token": token})
        raise_for_errcode(reply)
        return reply

    # -- the shared access_token ----------------------------------------------------------
    async def access_token(self) -> str:
        """The shared token; on a miss one process fetches it while the others wait."""
        token = await self._read_token()
        if token is not None:
            return token
        return await self._fetch_single_flight()

    async def refresh_token_if_due(self) -> bool:
        """Fetch a new token ahead of time if the shared one is missing or expires within a
        minute (a periodic job calls this so request paths rarely wait). True if fetched."""
        ttl_ms = await self.cache.redis.pttl(self.token_key)
        if ttl_ms > 60_000:
            return False
        return await self._fetch_if_lock_free()

    async def _read_token(self) -> str | None:
        value = await self.cache.redis.get(self.token_key)
        if not value:
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def _fetch_if_lock_free(self) -> bool:
        owner = secrets.token_hex(8)
        if not await self.cache.redis.set(self.lock_key, owner, nx=True, px=self._lock_ms()):
            return False  # another process is fetching right now
        try:
            await self._fetch_and_store()
        finally:
            await self._release(owner)
        return True

    async def _fetch_single_flight(self, rejected: str | None = None) -> str:
        """Fetch under the lock, or wait for whoever holds it, until a usable token appears.

        A usable token is any token other than `rejected` (the one WeChat just refused).
        """
        deadline = time.monotonic() + self.timeout * 2 + 2
        while True:
            token = await self._read_token()
            if token is not None and token != rejected:
                return token
            owner = secrets.token_hex(8)
            if await self.cache.redis.set(self.lock_key, owner, nx=True, px=self._lock_ms()):
                try:
                    token = await self._read_token()  # filled while we took the lock?
                    if token is not None and token != rejected:
                        return token
                    return await self._fetch_and_store()
                finally:
                    await self._release(owner)
            if time.monotonic() >= deadline:
                raise WeChatUnavailable("Timed out waiting for the WeChat access_token")
            await asyncio.sleep(_POLL_SECONDS)

    async def _token_after_rejection(self, rejected: str) -> str:
        """After WeChat refused `rejected`: use a newer shared token if another process
        already stored one; otherwise the first caller to claim this rejection re-fetches
        (normal mode) and everyone else waits for it."""
        current = await self._read_token()
        if current is not None and current != rejected:
            return current
        claim = self.cache.key("wechat", "access_token", "rejected",
                               hashlib.sha256(rejected.encode()).hexdigest()[:16])
        if await self.cache.redis.set(claim, 1, nx=True,
                                      ex=max(60, self.settings.wechat_token_refresh_margin)):
            await self._forget_token(rejected)
            return await self._fetch_single_flight(rejected=rejected)
        try:
            return await self._fetch_single_flight(rejected=rejected)
        except WeChatUnavailable:
            # The claimant could not do better (WeChat handed back the same token): retry
            # once with whatever is shared now rather than fetching again.
            return await self._read_token() or rejected

    async def _forget_token(self, rejected: str) -> None:
        await self.cache.redis.eval(_RELEASE_LUA, 1, self.token_key, rejected)

    async def _fetch_and_store(self) -> str:
        reply = await self._request("POST", "/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": self.settings.wechat_appid,
            "secret": self.settings.wechat_secret, "force_refresh": False})
        raise_for_errcode(reply)
        token, expires_in = reply.get("access_token"), reply.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) \
                or expires_in <= 0:
            raise WeChatBadReply("WeChat's stable_token reply lacks access_token or expires_in")
        # Kept until `margin` before WeChat's own expiry: a token read from the cache always
        # has at least that long to live, and the next fetch falls in the window in which
        # stable_token hands out a new one.
        ttl = expires_in - self.settings.wechat_token_refresh_margin
        if ttl <= 0:
            ttl = max(1, expires_in // 2)
        await self.cache.redis.set(self.token_key, token, ex=ttl)
        log.info("wechat access_token refreshed, cached for %ss", ttl)
        return token

    async def _release(self, owner: str) -> None:
        await self.cache.redis.eval(_RELEASE_LUA, 1, self.lock_key, owner)

    def _lock_ms(self) -> int:
        # Outlives one fetch (timeout included) so a second holder cannot start meanwhile;
        # expires by itself if the holder dies.
        return int((self.timeout + 2) * 1000)

    # -- transport -------------------------------------------------------------------------
    async def _request(self, method: str, path: str, json: Any = None,
                       params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self.http.request(
                method, self.base + path, params=params,
                content=codec.dumps(json) if json is not None else None,
                headers={"Content-Type": "application/json"} if json is not None else None,
                timeout=self.timeout)
        except httpx.TimeoutException as error:
            raise WeChatUnavailable("WeChat did not answer in time") from error
        except httpx.HTTPError as error:
            raise WeChatUnavailable("WeChat is unreachable") from error
        if response.status_code >= 500:
            raise WeChatUnavailable(f"WeChat answered HTTP {response.status_code}")
        try:
            reply = codec.loads(response.content)
        except codec.JSONDecodeError as error:
            raise WeChatBadReply("WeChat sent a reply that is not JSON") from error
        if not isinstance(reply, dict):
            raise WeChatBadReply("WeChat sent a reply that is not a JSON object")
        if response.status_code >= 400 and not _errcode(reply):
            raise WeChatError(f"WeChat answered HTTP {response.status_code}")
        return reply


def _errcode(reply: dict[str, Any]) -> int:
    code = reply.get("errcode", 0)
    try:
        return int(code or 0)
    except (TypeError, ValueError):
        return -1


def raise_for_errcode(reply: dict[str, Any]) -> None:
    """Map a WeChat errcode to our error classes (nothing if the call succeeded)."""
    errcode = _errcode(reply)
    if errcode == 0:
        return
    errmsg = str(reply.get("errmsg", ""))[:200]
    if errcode in INVALID_CODE_ERRCODES:
        raise InvalidCode(errors=[field_error("code", "invalid or already used")])
    if errcode in RATE_LIMIT_ERRCODES:
        raise WeChatRateLimited(headers={"Retry-After": "5"})
    if errcode in BUSY_ERRCODES:
        raise WeChatUnavailable("WeChat is busy; try again shortly")
    error = WeChatError(f"WeChat error {errcode}: {errmsg}".rstrip(": "))
    error.errcode = errcode  # callers that treat some codes as final read it (43101, 47003)
    raise error


def decrypt_user_data(session_key: str, encrypted_data: str, iv: str,
                      appid: str) -> dict[str, Any]:
    """Decrypt a mini-program encryptedData blob (AES-128-CBC, PKCS#7, all base64) and check
    that its watermark names our app."""
    def invalid(message: str) -> ValidationFailed:
        return ValidationFailed(errors=[field_error("encryptedData", message)])

    try:
        key = base64.b64decode(session_key, validate=True)
        iv_bytes = base64.b64decode(iv, validate=True)
        data = base64.b64decode(encrypted_data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid("not valid base64") from error
    if len(key) != 16 or len(iv_bytes) != 16 or not data or len(data) % 16:
        raise invalid("wrong key, iv or data length")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv_bytes)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = decryptor.update(data) + decryptor.finalize()
        plain = unpadder.update(plain) + unpadder.finalize()
        payload = codec.loads(plain)
    except (ValueError, codec.JSONDecodeError) as error:
        raise invalid("could not be decrypted with this login's session") from error
    if not isinstance(payload, dict):
        raise invalid("decrypted data is not an object")
    watermark = payload.get("watermark")
    if not isinstance(watermark, dict) or watermark.get("appid") != appid:
        raise invalid("watermark does not belong to this app")
    return payload


def encrypt_user_data(session_key: str, payload: dict[str, Any]) -> tuple[str, str]:
    """The inverse of decrypt_user_data: (encryptedData, iv). What WeChat does on the client;
    used by the fake WeChat server and the demo data."""
    key = base64.b64decode(session_key)
    iv = secrets.token_bytes(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(codec.dumps(payload)) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    data = encryptor.update(plain) + encryptor.finalize()
    return base64.b64encode(data).decode(), base64.b64encode(iv).decode()

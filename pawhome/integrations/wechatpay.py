"""The WeChat Pay v3 client (JSAPI for the mini-program): prepay, query, close, refunds, trade
bills, and the verification and decryption of WeChat's notifies.

Async on httpx (`resources.http`; the simulated provider's transport in embedded mode). Every
request is signed WECHATPAY2-SHA256-RSA2048 with the merchant key; every reply's
Wechatpay-Signature is checked before its body is trusted, with the WeChat Pay public key or a
platform certificate as Wechatpay-Serial says. docs/payments.md explains keys and rotation.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from pawhome.integrations import wechatpay_crypto as crypto
from pawhome.integrations.wechatpay_sim import WeChatPaySimulator
from pawhome.platform import codec
from pawhome.platform.logs import mask_openid
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.integrations.wechatpay")

CHINA = timezone(timedelta(hours=8))  # WeChat's times are RFC 3339 in +08:00
# WeChat's codes that mean "try again later with the same parameters".
TRANSIENT_CODES = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "BANK_ERROR",
                             "STATEMENT_CREATING"})
NOTIFY_REASONS = ("bad_signature", "unknown_serial", "stale_timestamp", "malformed",
                  "decrypt_failed")


class WeChatPayError(Exception):
    """A call to WeChat Pay failed. `status`: HTTP status (0 when none came back); `code`:
    WeChat's code (ORDERPAID, ...) or ours (TIMEOUT, UNREACHABLE, INVALID_REPLY_SIGNATURE, ...);
    `transient`: the same call may succeed later (timeouts, 5xx, SYSTEM_ERROR, ...)."""

    def __init__(self, message: str, *, status: int = 0, code: str = "",
                 transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.transient = transient

    def __str__(self) -> str:
        parts = [p for p in (self.code, f"HTTP {self.status}" if self.status else "") if p]
        return f"{self.message} ({', '.join(parts)})" if parts else self.message


class NotifyRejected(Exception):
    """A notify we refuse; answer WeChat non-2xx so it retries (a forged one never passes)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in NOTIFY_REASONS:
            raise ValueError(f"unknown notify rejection reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Notification:
    """A verified, decrypted notify: `resource` is the transaction (TRANSACTION.*) or the
    refund (REFUND.*) as WeChat's JSON."""
    id: str
    event_type: str
    resource_type: str
    summary: str
    create_time: str
    resource: dict[str, Any]

    def __repr__(self) -> str:
        # The resource holds the payer's openid: keep it out of any log that prints this.
        number = self.resource.get("out_refund_no") or self.resource.get("out_trade_no")
        return f"Notification(id={self.id!r}, event_type={self.event_type!r}, for={number!r})"


@dataclass(frozen=True)
class PlatformCertificate:
    serial: str
    key: rsa.RSAPublicKey
    not_after: datetime


class WeChatPayClient:
    """One process's WeChat Pay client (see `client_for`): holds the loaded keys and the
    platform certificates downloaded so far."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.base = settings.wechatpay_api_base.rstrip("/")
        self.mchid = settings.wechatpay_mchid
        self.appid = settings.wechatpay_appid or settings.wechat_appid
        self.timeout = settings.wechatpay_timeout
        self.max_skew = settings.wechatpay_notify_max_skew_seconds
        # The simulated provider behind this client's transport (payment_provider=simulated).
        self.simulator: WeChatPaySimulator | None = None
        self._merchant_key: rsa.RSAPrivateKey | None = None
        self._public_key: rsa.RSAPublicKey | None = None
        self._certificates: dict[int, PlatformCertificate] = {}
        self._certs_fetched_at: float | None = None  # monotonic time of the last download
        self._certs_retried_at = -math.inf  # last download asked for by an unknown serial
        self._certs_failed_at = -math.inf  # last download that failed
        self._certs_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    # -- payments --------------------------------------------------------------------------
    async def jsapi_prepay(self, *, out_trade_no: str, description: str, amount: int,
                           payer_openid: str, time_expire: datetime,
                           notify_url: str | None = None, attach: str = "") -> str:
        """Open (or reopen, same parameters) the JSAPI transaction; its prepay_id.
        `amount` in fen; `time_expire` aware, or naive meaning UTC."""
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError("amount must be a positive number of fen")
        body: dict[str, Any] = {
            "appid": self.appid, "mchid": self.mchid, "description": _cut(description, 127),
            "out_trade_no": out_trade_no, "time_expire": rfc3339(time_expire),
            "notify_url": notify_url or self.settings.wechatpay_notify_url,
            "amount": {"total": amount, "currency": "CNY"},
            "payer": {"openid": payer_openid},
        }
        if attach:
            body["attach"] = attach
        reply = await self._json("POST", "/v3/pay/transactions/jsapi", body=body)
        prepay_id = reply.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise WeChatPayError("WeChat Pay's prepay reply lacks prepay_id", code="BAD_REPLY",
                                 transient=True)
        log.info("wechatpay prepay %s for %s", out_trade_no, mask_openid(payer_openid))
        return prepay_id

    def request_payment_params(self, prepay_id: str) -> dict[str, str]:
        """The parameters of wx.requestPayment for this prepay_id, paySign included."""
        timestamp, nonce = str(int(time.time())), crypto.new_nonce()
        package = f"prepay_id={prepay_id}"
        pay_sign = crypto.sign(self._signing_key(),
                               crypto.pay_sign_message(self.appid, timestamp, nonce, package))
        return {"appId": self.appid, "timeStamp": timestamp, "nonceStr": nonce,
                "package": package, "signType": "RSA", "paySign": pay_sign}

    async def query_by_out_trade_no(self, out_trade_no: str) -> dict[str, Any] | None:
        """WeChat's transaction (trade_state, transaction_id, amount, payer, ...); None when
        WeChat has no such order (never prepaid)."""
        try:
            reply = await self._json(
                "GET", f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}",
                query={"mchid": self.mchid})
        except WeChatPayError as error:
            if error.code == "ORDER_NOT_EXIST":
                return None
            raise
        if reply.get("out_trade_no") != out_trade_no:
            raise WeChatPayError("WeChat Pay answered about another order", code="BAD_REPLY")
        return reply

    async def close(self, out_trade_no: str) -> None:
        """Close an unpaid transaction. Closing one that is closed or unknown succeeds; a
        paid one raises WeChatPayError(code="ORDERPAID")."""
        try:
            await self._call("POST", f"/v3/pay/transactions/out-trade-no/"
                             f"{_segment(out_trade_no)}/close", body={"mchid": self.mchid})
        except WeChatPayError as error:
            if error.code in ("ORDER_NOT_EXIST", "ORDERCLOSED", "ORDER_CLOSED"):
                return
            raise

    # -- refunds ---------------------------------------------------------------------------
    async def refund(self, *, out_refund_no: str, out_trade_no: str, amount: int, total: int,
                     reason: str = "", notify_url: str | None = None) -> dict[str, Any]:
        """Ask for a refund of `amount` fen of a `total`-fen transaction. Asking again with
        the same out_refund_no is answered with the same refund (WeChat's idempotency)."""
        if amount <= 0 or total <= 0 or amount > total:
            raise ValueError("refund amount must be within 1..total fen")
        body: dict[str, Any] = {
            "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
            "notify_url": notify_url or self.settings.wechatpay_refund_notify_url,
            "amount": {"refund": amount, "total": total, "currency": "CNY"},
        }
        if reason:
            body["reason"] = _cut(reason, 80)
        reply = await self._json("POST", "/v3/refund/domestic/refunds", body=body)
        if reply.get("out_refund_no") != out_refund_no:
            raise WeChatPayError("WeChat Pay answered about another refund", code="BAD_REPLY")
        return reply

    async def query_refund(self, out_refund_no: str) -> dict[str, Any] | None:
        """WeChat's refund (status SUCCESS/CLOSED/PROCESSING/ABNORMAL, ...); None if unknown."""
        try:
            reply = await self._json(
                "GET", f"/v3/refund/domestic/refunds/{_segment(out_refund_no)}")
        except WeChatPayError as error:
            if error.code in ("RESOURCE_NOT_EXISTS", "ORDER_NOT_EXIST"):
                return None
            raise
        if reply.get("out_refund_no") != out_refund_no:
            raise WeChatPayError("WeChat Pay answered about another refund", code="BAD_REPLY")
        return reply

    # -- reconciliation --------------------------------------------------------------------
    async def trade_bill(self, bill_date: date) -> list[dict[str, Any]]:
        """The day's trade bill (all transactions and refunds), one dict per row: see
        `parse_trade_bill`. A day without transactions is an empty list."""
        try:
            reply = await self._json("GET", "/v3/bill/tradebill", query={
                "bill_date": bill_date.isoformat(), "bill_type": "ALL"})
        except WeChatPayError as error:
            if error.code == "NO_STATEMENT_EXIST":
                return []
            raise
        url, hash_type, hash_value = (reply.get("download_url"), reply.get("hash_type"),
                                      reply.get("hash_value"))
        if not isinstance(url, str) or not isinstance(hash_value, str) or hash_type != "SHA1":
            raise WeChatPayError("WeChat Pay's bill reply lacks download_url or its SHA1",
                                 code="BAD_REPLY")
        # The download is signed like any request: never send that to another host.
        target, ours = urlsplit(url), urlsplit(self.base)
        if (target.scheme, target.netloc) != (ours.scheme, ours.netloc):
            raise WeChatPayError("WeChat Pay's bill download_url is not on its API host",
                                 code="BAD_REPLY")
        path = target.path + (f"?{target.query}" if target.query else "")
        # Bill files are not signed: WeChat's documentation has them checked by their hash.
        response = await self._call("GET", path, verify_reply=False)
        # A busy day's bill is megabytes (100,000 rows parse in about a second): hash and
        # parse it off the event loop.
        return await asyncio.to_thread(_checked_bill, response.content, hash_value)

    # -- notifies --------------------------------------------------------------------------
    def parse_notification(self, headers: Mapping[str, str], body: bytes, *,
                           now: float | None = None) -> Notification:
        """Verify and decrypt a notify as WeChat posted it; raises NotifyRejected.

        Checks, in order: the Wechatpay-* headers are there; the serial names our public key
        or a platform certificate we hold; the signature over timestamp\\nnonce\\nbody\\n;
        the timestamp within the allowed skew; the body; the AEAD_AES_256_GCM resource.
        Certificates are not downloaded here (this is synchronous): a certificate serial we
        do not hold starts a download in the background and is refused, so WeChat's retry
        passes. `receive_notification` downloads first.
        """
        lowered = {name.lower(): value for name, value in headers.items()}
        signature = lowered.get("wechatpay-signature", "")
        timestamp = lowered.get("wechatpay-timestamp", "")
        nonce = lowered.get("wechatpay-nonce", "")
        serial = lowered.get("wechatpay-serial", "")
        if not (signature and timestamp and nonce and serial):
            raise NotifyRejected("malformed", "Wechatpay-* headers missing")
        kind = lowered.get("wechatpay-signature-type", crypto.AUTH_SCHEMA)
        if kind != crypto.AUTH_SCHEMA:
            raise NotifyRejected("malformed", "unsupported Wechatpay-Signature-Type")
        key = self._platform_key(serial)
        if key is None:
            self._refresh_in_background(serial)
            raise NotifyRejected("unknown_serial", serial[:64])
        if not crypto.verify(key, crypto.response_message(timestamp, nonce, body), signature):
            raise NotifyRejected("bad_signature")
        try:
            sent_at = int(timestamp)
        except ValueError as error:
            raise NotifyRejected("malformed", "Wechatpay-Timestamp is not a number") from error
        if abs((time.time() if now is None else now) - sent_at) > self.max_skew:
            raise NotifyRejected("stale_timestamp")
        try:
            payload = codec.loads(body)
        except codec.JSONDecodeError as error:
            raise NotifyRejected("malformed", "body is not JSON") from error
        if not isinstance(payload, dict) or not isinstance(payload.get("resource"), dict):
            raise NotifyRejected("malformed", "no resource")
        resource = payload["resource"]
        fields = {name: resource.get(name) for name in ("ciphertext", "nonce")}
        if resource.get("algorithm") != crypto.AEAD_ALGORITHM \
                or not all(isinstance(v, str) and v for v in fields.values()):
            raise NotifyRejected("malformed", "resource is not AEAD_AES_256_GCM")
        associated = resource.get("associated_data") or ""
        try:
            plain = crypto.aead_decrypt(self.settings.wechatpay_apiv3_key,
                                        nonce=str(fields["nonce"]),
                                        ciphertext=str(fields["ciphertext"]),
                                        associated_data=str(associated))
        except ValueError as error:  # wrong key, tampered data or tag, bad base64
            raise NotifyRejected("decrypt_failed") from error
        try:
            decrypted = codec.loads(plain)
        except codec.JSONDecodeError as error:
            raise NotifyRejected("malformed", "resource is not JSON") from error
        if not isinstance(decrypted, dict):
            raise NotifyRejected("malformed", "resource is not an object")
        names = ("id", "event_type", "resource_type", "summary", "create_time")
        values = {name: payload.get(name) for name in names}
        if not all(isinstance(values[name], str) for name in ("id", "event_type")):
            raise NotifyRejected("malformed", "id or event_type missing")
        return Notification(**{name: str(value or "") for name, value in values.items()},
                            resource=decrypted)

    async def receive_notification(self, headers: Mapping[str, str], body: bytes, *,
                                   now: float | None = None) -> Notification:
        """parse_notification, after downloading the platform certificates if the notify
        names a certificate we do not hold yet (at most once per retry interval)."""
        serial = next((v for k, v in headers.items() if k.lower() == "wechatpay-serial"), "")
        if serial and self._platform_key(serial) is None and _is_cert_serial(serial):
            try:
                await self.refresh_certificates(unknown_serial=True)
            except WeChatPayError as error:
                log.warning("wechatpay certificate download failed: %s", error)
        return self.parse_notification(headers, body, now=now)

    # -- platform keys ---------------------------------------------------------------------
    async def refresh_certificates(self, *, unknown_serial: bool = False) -> None:
        """Download the platform certificates (decrypted with the APIv3 key) if due: never
        fetched, older than the refresh interval, or (unknown_serial) a reply or notify named
        a serial we do not hold and the last such download is older than the retry interval.
        """
        async with self._certs_lock:
            now = time.monotonic()
            fetched = self._certs_fetched_at
            due = fetched is None or now - fetched > self.settings.wechatpay_cert_refresh_seconds
            if not due and unknown_serial:
                due = now - self._certs_retried_at >= self.settings.wechatpay_cert_retry_seconds
                self._certs_retried_at = now if due else self._certs_retried_at
            # After a failed download wait a little before the next try: notifies naming
            # made-up serials must not turn into a stream of downloads while WeChat is down.
            backoff = min(5.0, self.settings.wechatpay_cert_retry_seconds)
            if due and now - self._certs_failed_at < backoff:
                raise WeChatPayError("platform certificates are unavailable (recent download "
                                     "failed)", code="NO_CERTIFICATE", transient=True)
            if due:
                try:
                    await self._download_certificates()
                except WeChatPayError:
                    self._certs_failed_at = time.monotonic()
                    raise

    async def _download_certificates(self) -> None:
        response = await self._call("GET", "/v3/certificates", verify_reply=False)
        reply = _json_object(response)
        certificates: dict[int, PlatformCertificate] = {}
        now = datetime.now(UTC)
        for entry in reply.get("data") or []:
            encrypted = entry.get("encrypt_certificate") if isinstance(entry, dict) else None
            if not isinstance(encrypted, dict) or \
                    encrypted.get("algorithm") != crypto.AEAD_ALGORITHM:
                continue
            try:
                pem = crypto.aead_decrypt(
                    self.settings.wechatpay_apiv3_key, nonce=str(encrypted.get("nonce", "")),
                    ciphertext=str(encrypted.get("ciphertext", "")),
                    associated_data=str(encrypted.get("associated_data") or ""))
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError:
                log.warning("wechatpay: a platform certificate could not be decrypted "
                            "(is WECHATPAY_APIV3_KEY right?)")
                continue
            key = certificate.public_key()
            if not isinstance(key, rsa.RSAPublicKey) or not \
                    certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
                continue
            certificates[certificate.serial_number] = PlatformCertificate(
                crypto.serial_hex(certificate.serial_number), key,
                certificate.not_valid_after_utc)
        if not certificates:
            raise WeChatPayError("WeChat Pay sent no usable platform certificate",
                                 code="NO_CERTIFICATE", transient=True)
        # The list authenticates itself (only WeChat holds our APIv3 key); its reply must
        # also be signed by one of the certificates in it.
        self._check_reply_signature(response, lambda serial: _cert_key(certificates, serial))
        self._certificates = certificates
        self._certs_fetched_at = time.monotonic()
        log.info("wechatpay platform certificates: %s",
                 ", ".join(c.serial for c in certificates.values()))

    def platform_serials(self) -> list[str]:
        """The certificate serials held now (for operations and tests)."""
        return [c.serial for c in self._certificates.values()]

    def _platform_key(self, serial: str) -> rsa.RSAPublicKey | None:
        if serial.startswith(crypto.PUBLIC_KEY_ID_PREFIX):
            if serial != self.settings.wechatpay_public_key_id:
                return None
            return self._wechatpay_public_key()
        return _cert_key(self._certificates, serial)

    def _wechatpay_public_key(self) -> rsa.RSAPublicKey | None:
        if self._public_key is None and self.settings.wechatpay_public_key:
            try:
                self._public_key = crypto.load_public_key(self.settings.wechatpay_public_key)
            except crypto.KeyLoadError:
                log.error("WECHATPAY_PUBLIC_KEY cannot be loaded")
        return self._public_key

    def _refresh_in_background(self, serial: str) -> None:
        if not _is_cert_serial(serial):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def refresh() -> None:
            try:
                await self.refresh_certificates(unknown_serial=True)
            except WeChatPayError as error:
                log.warning("wechatpay certificate download failed: %s", error)

        task = loop.create_task(refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _signing_key(self) -> rsa.RSAPrivateKey:
        if self._merchant_key is None:
            if not self.settings.wechatpay_private_key or not self.settings.wechatpay_cert_serial:
                raise WeChatPayError("WeChat Pay is not configured (WECHATPAY_PRIVATE_KEY, "
                                     "WECHATPAY_CERT_SERIAL)", code="NOT_CONFIGURED")
            try:
                self._merchant_key = crypto.load_private_key(self.settings.wechatpay_private_key)
            except crypto.KeyLoadError as error:
                raise WeChatPayError(f"WeChat Pay is misconfigured: {error}",
                                     code="NOT_CONFIGURED") from error
        return self._merchant_key

    # -- transport -------------------------------------------------------------------------
    async def _json(self, method: str, path: str, *, query: dict[str, str] | None = None,
                    body: dict[str, Any] | None = None) -> dict[str, Any]:
        return _json_object(await self._call(method, path, query=query, body=body))

    async def _call(self, method: str, path: str, *, query: dict[str, str] | None = None,
                    body: dict[str, Any] | None = None,
                    verify_reply: bool = True) -> httpx.Response:
        """One signed request; its reply verified (unless told not to) and 4xx/5xx raised."""
        if query:
            path = f"{path}?{urlencode(query)}"
        content = codec.dumps(body) if body is not None else b""
        headers = {
            "Authorization": crypto.authorization(
                mchid=self.mchid, serial=self.settings.wechatpay_cert_serial,
                key=self._signing_key(), method=method, path_and_query=path, body=content,
                timestamp=str(int(time.time())), nonce=crypto.new_nonce()),
            "Accept": "application/json",
            "User-Agent": "PAWHome-WeChatPay/1 (+httpx)",
        }
        if content:
            headers["Content-Type"] = "application/json"
        try:
            response = await self.http.request(method, self.base + path, content=content or None,
                                               headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as error:
            raise WeChatPayError("WeChat Pay did not answer in time", code="TIMEOUT",
                                 transient=True) from error
        except httpx.HTTPError as error:
            raise WeChatPayError("WeChat Pay is unreachable", code="UNREACHABLE",
                                 transient=True) from error
        signed = "wechatpay-signature" in response.headers
        if verify_reply and (signed or response.is_success):
            await self._verify_reply(response)
        if not response.is_success:
            raise _error_from(response)
        return response

    async def _verify_reply(self, response: httpx.Response) -> None:
        serial = response.headers.get("wechatpay-serial", "")
        if self._platform_key(serial) is None and _is_cert_serial(serial):
            await self.refresh_certificates(unknown_serial=True)
        elif _is_cert_serial(serial) and self._certs_fetched_at is not None and \
                time.monotonic() - self._certs_fetched_at > \
                self.settings.wechatpay_cert_refresh_seconds:
            await self.refresh_certificates()
        self._check_reply_signature(response, self._platform_key)

    def _check_reply_signature(self, response: httpx.Response,
                               key_for: Callable[[str], rsa.RSAPublicKey | None]) -> None:
        headers = response.headers
        signature = headers.get("wechatpay-signature", "")
        serial = headers.get("wechatpay-serial", "")
        if not signature:
            raise WeChatPayError("WeChat Pay's reply is not signed", status=response.status_code,
                                 code="UNSIGNED_REPLY", transient=True)
        key = key_for(serial)
        if key is None:
            raise WeChatPayError("WeChat Pay's reply is signed with an unknown serial",
                                 status=response.status_code, code="UNKNOWN_SERIAL",
                                 transient=True)
        timestamp = headers.get("wechatpay-timestamp", "")
        message = crypto.response_message(timestamp, headers.get("wechatpay-nonce", ""),
                                          response.content)
        if not crypto.verify(key, message, signature):
            log.warning("wechatpay: a reply failed signature verification (serial %s)",
                        serial[:64])
            raise WeChatPayError("WeChat Pay's reply signature is invalid",
                                 status=response.status_code, code="INVALID_REPLY_SIGNATURE",
                                 transient=True)
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.max_skew:
            raise WeChatPayError("WeChat Pay's reply is stale", status=response.status_code,
                                 code="STALE_REPLY", transient=True)


# -- helpers ---------------------------------------------------------------------------------

def _cert_key(certificates: Mapping[int, PlatformCertificate],
              serial: str) -> rsa.RSAPublicKey | None:
    number = crypto.serial_int(serial)
    held = certificates.get(number) if number is not None else None
    return held.key if held is not None else None


def _is_cert_serial(serial: str) -> bool:
    return not serial.startswith(crypto.PUBLIC_KEY_ID_PREFIX) and \
        crypto.serial_int(serial) is not None and len(serial) <= 64


def _cut(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes (WeChat's lengths count bytes), never half a character."""
    return text.encode()[:limit].decode(errors="ignore")


def _segment(value: str) -> str:
    return quote(value, safe="")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        reply = codec.loads(response.content)
    except codec.JSONDecodeError as error:
        raise WeChatPayError("WeChat Pay sent a reply that is not JSON",
                             status=response.status_code, code="BAD_REPLY",
                             transient=True) from error
    if not isinstance(reply, dict):
        raise WeChatPayError("WeChat Pay sent a reply that is not a JSON object",
                             status=response.status_code, code="BAD_REPLY", transient=True)
    return reply


def _error_from(response: httpx.Response) -> WeChatPayError:
    status, code, message = response.status_code, "", ""
    try:
        reply = codec.loads(response.content) if response.content else None
    except codec.JSONDecodeError:
        reply = None
    if isinstance(reply, dict):
        code, message = str(reply.get("code") or ""), str(reply.get("message") or "")[:200]
    transient = status >= 500 or status == 429 or code in TRANSIENT_CODES
    return WeChatPayError(message or f"WeChat Pay answered HTTP {status}", status=status,
                          code=code, transient=transient)


def rfc3339(moment: datetime) -> str:
    """A time as WeChat wants it: 2025-01-02T15:04:05+08:00 (naive times are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def yuan_to_fen(text: str) -> int:
    """"¥12.34" / "12.34" / "0" -> 1234 / 1234 / 0, exactly (Decimal; a fraction of a fen is
    refused with ValueError)."""
    cleaned = text.strip().lstrip("¥￥").replace(",", "").strip()
    if not cleaned:
        return 0
    try:
        value = Decimal(cleaned) * 100
    except InvalidOperation as error:
        raise ValueError(f"not an amount: {text[:20]!r}") from error
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"not a whole number of fen: {text[:20]!r}")
    return int(value)


# The trade bill's columns (bill_type=ALL) -> our names; amounts in yuan become fen.
BILL_COLUMNS = {
    "交易时间": "trade_time", "公众账号ID": "appid", "商户号": "mchid", "特约商户号": "sub_mchid",
    "设备号": "device_info", "微信订单号": "transaction_id", "商户订单号": "out_trade_no",
    "用户标识": "openid", "交易类型": "trade_type", "交易状态": "trade_state",
    "付款银行": "bank_type", "货币种类": "currency", "应结订单金额": "settlement_amount",
    "代金券金额": "coupon_amount", "微信退款单号": "refund_id", "商户退款单号": "out_refund_no",
    "退款金额": "refund_amount", "充值券退款金额": "coupon_refund_amount",
    "退款类型": "refund_type", "退款状态": "refund_status", "商品名称": "description",
    "商户数据包": "attach", "手续费": "fee", "费率": "rate", "订单金额": "amount",
    "申请退款金额": "refund_requested_amount", "费率备注": "rate_note",
}
BILL_FEN_COLUMNS = frozenset({"settlement_amount", "coupon_amount", "refund_amount",
                              "coupon_refund_amount", "amount", "refund_requested_amount"})
BILL_REQUIRED = ("trade_time", "transaction_id", "out_trade_no", "trade_state", "amount",
                 "refund_amount", "out_refund_no")
SUMMARY_FIRST_COLUMN = "总交易单数"


def _checked_bill(content: bytes, sha1: str) -> list[dict[str, Any]]:
    if hashlib.sha1(content, usedforsecurity=False).hexdigest() != sha1.lower():
        raise WeChatPayError("the downloaded bill does not match its SHA1",
                             code="BILL_HASH_MISMATCH", transient=True)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise WeChatPayError("the trade bill is not UTF-8", code="BAD_BILL") from error
    return parse_trade_bill(text)


def parse_trade_bill(text: str) -> list[dict[str, Any]]:
    """WeChat's trade bill CSV -> rows. The first line names the columns; every data field
    starts with a backtick (so spreadsheets keep long numbers); the summary lines after the
    rows (总交易单数, ...) are checked against the rows and dropped. Amount columns are int fen
    (`amount` = 订单金额, `settlement_amount` = 应结订单金额, `refund_amount` = 退款金额);
    the fee (手续费, five decimals of yuan) stays text. A refund is its own row with
    trade_state REFUND and the transaction's out_trade_no."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = [name.strip().lstrip("\ufeff") for name in lines[0].split(",")]
    keys = [BILL_COLUMNS.get(name, name) for name in header]
    missing = [key for key in BILL_REQUIRED if key not in keys]
    if missing:
        raise WeChatPayError(f"the trade bill lacks columns: {', '.join(missing)}",
                             code="BAD_BILL")
    rows: list[dict[str, Any]] = []
    summary: list[str] | None = None
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith(SUMMARY_FIRST_COLUMN):
            # lines[number] is the line after this one (numbers count from 1): the totals.
            summary = lines[number].split(",`") if number < len(lines) else None
            break
        fields = _bill_fields(line)
        if len(fields) != len(keys):
            raise WeChatPayError(f"trade bill line {number} has {len(fields)} fields, "
                                 f"not {len(keys)}", code="BAD_BILL")
        row: dict[str, Any] = {}
        for key, value in zip(keys, fields, strict=True):
            if key in BILL_FEN_COLUMNS:
                try:
                    row[key] = yuan_to_fen(value)
                except ValueError as error:
                    raise WeChatPayError(f"trade bill line {number}: {error}",
                                         code="BAD_BILL") from error
            else:
                row[key] = value
        rows.append(row)
    if summary is not None:
        count = summary[0].strip().lstrip("`")
        if count.isdigit() and int(count) != len(rows):
            log.warning("wechatpay trade bill: %s rows but the summary counts %s",
                        len(rows), count)
    return rows


def _bill_fields(line: str) -> list[str]:
    # Fields are ",`"-separated with a leading backtick: split on that, not on bare commas,
    # which may appear inside a product name.
    body = line.rstrip("\r")
    if body.startswith("`"):
        body = body[1:]
    return [field.strip() for field in body.split(",`")]


# -- one client per process ------------------------------------------------------------------

_clients: weakref.WeakKeyDictionary[Resources, WeChatPayClient] = weakref.WeakKeyDictionary()


def client_for(resources: Resources) -> WeChatPayClient:
    """The process's client for these resources (keys loaded once, certificates cached).
    payment_provider "simulated": the client talks to the in-process simulated WeChat Pay
    (wechatpay_sim) through the same signing and verification."""
    client = _clients.get(resources)
    if client is None:
        if resources.settings.payment_provider == "simulated":
            simulator = WeChatPaySimulator(resources.settings, resources.cache)
            http = httpx.AsyncClient(transport=simulator.transport())
            resources.on_close(http.aclose)
            client = WeChatPayClient(simulator.client_settings(), http)
            client.simulator = simulator
        else:
            client = WeChatPayClient(resources.settings, resources.http)
        _clients[resources] = client
    return client

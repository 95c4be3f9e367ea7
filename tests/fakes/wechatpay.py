"""A fake WeChat Pay v3 server: JSAPI prepay, query, close, refunds, trade bills, platform
certificates, and notifies built and posted as WeChat would.

Its cryptography is written out here from WeChat's documentation with `cryptography` alone,
independently of pawhome/integrations/wechatpay_crypto.py, so a test that passes proves our
side against WeChat's algorithm, not against itself (tests also check both with the
`wechatpayv3` SDK). Every request must carry a valid WECHATPAY2-SHA256-RSA2048 Authorization
made with the merchant key (401 SIGN_ERROR otherwise). Replies and notifies are signed with a
platform certificate (the default), the WeChat Pay public key, or an unknown key
(`state.sign_with`); `rotate_certificate()` moves to a new certificate as WeChat does.
Steering: `fail_next(path, status, body, delay=...)`, `tamper_next_reply()`, `pay(...)`,
`payment_notification(...)`, `refund_notification(...)` (variants for hostile tests) and
`deliver(url, headers, body)`. Keys are made at import: nothing here is a real secret.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import tornado.web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from tests.fakes import BackgroundServer, RecordedRequest

CHINA = timezone(timedelta(hours=8))
MCHID = "1900000109"
APPID = os.environ.get("WECHATPAY_APPID") or os.environ.get("WECHAT_APPID", "wx-dev-appid")
APIV3_KEY = secrets.token_hex(16)  # 32 characters
AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW = 300


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class Signer:
    """A key WeChat signs with and the Wechatpay-Serial that names it."""
    key: rsa.RSAPrivateKey
    serial: str
    certificate_pem: str = ""  # "" for the public-key mode

    def sign(self, message: bytes) -> str:
        return base64.b64encode(
            self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def _certificate_signer(common_name: str) -> Signer:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=365 * 5))
                   .sign(key, hashes.SHA256()))
    return Signer(key, format(certificate.serial_number, "X"),
                  certificate.public_bytes(serialization.Encoding.PEM).decode())


MERCHANT_KEY = _new_key()
MERCHANT_KEY_PEM = private_pem(MERCHANT_KEY)
MERCHANT_SERIAL = secrets.token_hex(20).upper()
PLATFORM = _certificate_signer("Tenpay.com Root CA (fake)")
PLATFORM_NEXT = _certificate_signer("Tenpay.com Root CA (fake, rotated)")
PUBLIC_KEY = Signer(_new_key(), "PUB_KEY_ID_0119000001092025010100000000000001")
PUBLIC_KEY_PEM = public_pem(PUBLIC_KEY.key)
PUBLIC_KEY_ID = PUBLIC_KEY.serial
STRANGER = _certificate_signer("Not WeChat")  # never served by /v3/certificates

NOTIFY_VARIANTS = ("bad_signature", "stale_timestamp", "unknown_serial", "tampered_ciphertext",
                   "malformed", "missing_headers", "wrong_apiv3_key", "wrong_amount")


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def aead_encrypt(key: str, nonce: str, plaintext: bytes, associated_data: str) -> str:
    return base64.b64encode(AESGCM(key.encode()).encrypt(
        nonce.encode(), plaintext, associated_data.encode())).decode()


def authorization_problem(method: str, target: str, body: bytes, header: str) -> str | None:
    """Why this Authorization header does not prove the merchant sent the request (None: it
    does): schema, mchid, serial_no, timestamp within 5 minutes, signature over
    method\\nURL\\ntimestamp\\nnonce\\nbody\\n with the merchant's public key."""
    schema, _, rest = header.partition(" ")
    if schema != AUTH_SCHEMA:
        return "wrong schema"
    fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    if set(fields) != {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}:
        return "wrong fields"
    if fields["mchid"] != MCHID:
        return "wrong mchid"
    if fields["serial_no"] != MERCHANT_SERIAL:
        return "unknown merchant certificate serial"
    if not fields["timestamp"].isdigit() or abs(time.time() - int(fields["timestamp"])) > MAX_SKEW:
        return "stale timestamp"
    message = (f"{method}\n{target}\n{fields['timestamp']}\n{fields['nonce_str']}\n".encode()
               + body + b"\n")
    try:
        MERCHANT_KEY.public_key().verify(base64.b64decode(fields["signature"]), message,
                                         padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return "signature does not verify"
    return None


def china_time(moment: datetime | float | None = None) -> str:
    if moment is None:
        moment = time.time()
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


BILL_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
               "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
               "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
               "费率备注")
BILL_SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


class FakeWeChatPayState:
    """What the fake holds and how it answers; reset before each test."""

    def __init__(self) -> None:
        # Re-entrant: handlers answer (and sign, which reads the state) while holding it.
        self.lock = threading.RLock()
        self.base_url = ""
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[RecordedRequest] = []
            self.refused: list[str] = []  # why requests failed the Authorization check
            # (method, request target as signed, raw body, Authorization) of every request
            self.sent: list[tuple[str, str, bytes, str]] = []
            self.canned: dict[str, deque[tuple[int, Any, float, bool]]] = {}
            self.tamper_replies = 0
            # "certificate" (current_certificate), "public_key" (PUBLIC_KEY) or "unknown"
            self.sign_with = "certificate"
            self.current_certificate = PLATFORM
            self.served_certificates = [PLATFORM]
            self.transactions: dict[str, dict[str, Any]] = {}
            self.refunds: dict[str, dict[str, Any]] = {}
            self.bills: dict[str, bytes] = {}  # download token -> file
            self.bill_amount_overrides: dict[str, int] = {}  # out_trade_no -> fen in the bill
            self.bill_extra_lines: list[list[str]] = []
            self.bill_currency_sign = ""  # "¥": amounts written as ¥12.34
            self.corrupt_bill_hash = False

    # -- steering ----------------------------------------------------------------------------
    def fail_next(self, path: str, status: int = 500, body: Any = None, *, times: int = 1,
                  delay: float = 0.0, signed: bool = True) -> None:
        """Answer the next `times` requests to `path` (no query) with this status and JSON
        body after `delay` seconds; signed like any reply unless told otherwise."""
        if body is None:
            body = {"code": "SYSTEM_ERROR", "message": "系统错误"}
        with self.lock:
            queue = self.canned.setdefault(path, deque())
            for _ in range(times):
                queue.append((status, body, delay, signed))

    def tamper_next_reply(self, times: int = 1) -> None:
        """The next replies carry a signature that does not match their body."""
        with self.lock:
            self.tamper_replies += times

    def rotate_certificate(self) -> None:
        """WeChat's certificate rotation: both certificates served, replies and notifies
        signed with the new one."""
        with self.lock:
            self.served_certificates = [PLATFORM, PLATFORM_NEXT]
            self.current_certificate = PLATFORM_NEXT

    def signer(self) -> Signer:
        return {"certificate": self.current_certificate, "public_key": PUBLIC_KEY,
                "unknown": STRANGER}[self.sign_with]

    def pay(self, out_trade_no: str, *, when: datetime | float | None = None,
            payer_total: int | None = None) -> dict[str, Any]:
        """The payer pays: the transaction becomes SUCCESS (at `when`, default now)."""
        with self.lock:
            trade = self.transactions[out_trade_no]
            trade.update(trade_state="SUCCESS", trade_state_desc="支付成功", bank_type="OTHERS",
                         transaction_id="4200" + "".join(secrets.choice("0123456789")
                                                         for _ in range(24)),
                         success_time=china_time(when))
            total = trade["amount"]["total"]
            trade["amount"].update(payer_total=total if payer_total is None else payer_total,
                                   payer_currency="CNY")
            return self._public_trade(trade)

    def settle_refund(self, out_refund_no: str, status: str = "SUCCESS",
                      when: datetime | float | None = None) -> dict[str, Any]:
        """WeChat finishes a refund: SUCCESS, ABNORMAL or CLOSED."""
        with self.lock:
            refund = self.refunds[out_refund_no]
            refund["status"] = status
            if status == "SUCCESS":
                refund["success_time"] = china_time(when)
            if status == "CLOSED":  # the money goes back to what can be refunded
                trade = self.transactions[refund["out_trade_no"]]
                trade["refunded"] -= refund["amount"]["refund"]
            return dict(refund)

    # -- notifies ----------------------------------------------------------------------------
    def payment_notification(self, out_trade_no: str, *, variant: str | None = None,
                             event_type: str = "TRANSACTION.SUCCESS"
                             ) -> tuple[dict[str, str], bytes]:
        """WeChat's payment notify for this transaction as it is now (pay() it first)."""
        with self.lock:
            resource = self._public_trade(self.transactions[out_trade_no])
        if variant == "wrong_amount":
            resource["amount"] = {**resource["amount"], "total": resource["amount"]["total"] + 1,
                                  "payer_total": resource["amount"]["total"] + 1}
        return self.notification(event_type, "支付成功", "transaction", resource, variant=variant)

    def refund_notification(self, out_refund_no: str, status: str = "SUCCESS", *,
                            variant: str | None = None) -> tuple[dict[str, str], bytes]:
        """Settle the refund with `status` and build WeChat's REFUND.<status> notify."""
        refund = self.settle_refund(out_refund_no, status)
        resource = {key: refund[key] for key in (
            "mchid", "out_trade_no", "transaction_id", "out_refund_no", "refund_id",
            "user_received_account")}
        resource.update(refund_status=status, success_time=refund.get("success_time", ""),
                        amount={key: refund["amount"][key] for key in (
                            "total", "refund", "payer_total", "payer_refund")})
        summary = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}[status]
        return self.notification(f"REFUND.{status}", summary, "refund", resource,
                                 variant=variant)

    def notification(self, event_type: str, summary: str, original_type: str,
                     resource: dict[str, Any], *, variant: str | None = None
                     ) -> tuple[dict[str, str], bytes]:
        """A notify as WeChat posts it, or a hostile variant of one (NOTIFY_VARIANTS)."""
        if variant is not None and variant not in NOTIFY_VARIANTS:
            raise ValueError(variant)
        nonce = secrets.token_hex(6)
        key = secrets.token_hex(16) if variant == "wrong_apiv3_key" else APIV3_KEY
        ciphertext = aead_encrypt(key, nonce, json.dumps(resource, ensure_ascii=False).encode(),
                                  original_type)
        if variant == "tampered_ciphertext":
            raw = bytearray(base64.b64decode(ciphertext))
            raw[len(raw) // 2] ^= 0x01
            ciphertext = base64.b64encode(bytes(raw)).decode()
        body = json.dumps({
            "id": str(uuid.uuid4()), "create_time": china_time(), "event_type": event_type,
            "resource_type": "encrypt-resource", "summary": summary,
            "resource": {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                         "ciphertext": ciphertext, "associated_data": original_type,
                         "nonce": nonce},
        }, ensure_ascii=False).encode()
        if variant == "malformed":
            body = b'{"id": "EV-broken", "resource": '
        signer = STRANGER if variant == "unknown_serial" else self.signer()
        timestamp = int(time.time()) - (MAX_SKEW + 60 if variant == "stale_timestamp" else 0)
        headers = self.signed_headers(body, signer=signer, timestamp=timestamp,
                                      tamper=variant == "bad_signature")
        if variant == "missing_headers":
            del headers["Wechatpay-Signature"]
        return headers, body

    @staticmethod
    async def deliver(url: str, headers: dict[str, str], body: bytes,
                      timeout: float = 10.0) -> httpx.Response:
        """POST a notify to `url` as WeChat does (from the caller's event loop)."""
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await client.post(url, content=body, headers={
                **headers, "Content-Type": "application/json",
                "User-Agent": "Mozilla/4.0"})

    # -- signing -----------------------------------------------------------------------------
    def signed_headers(self, body: bytes, *, signer: Signer | None = None,
                       timestamp: int | None = None, tamper: bool = False) -> dict[str, str]:
        signer = signer or self.signer()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16).upper()
        signed = body + b" " if tamper else body
        return {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce,
                "Wechatpay-Serial": signer.serial,
                "Wechatpay-Signature": signer.sign(response_message(stamp, nonce, signed)),
                "Wechatpay-Signature-Type": AUTH_SCHEMA,
                "Request-ID": uuid.uuid4().hex}

    # -- reading in tests --------------------------------------------------------------------
    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def transaction(self, out_trade_no: str) -> dict[str, Any]:
        with self.lock:
            return self._public_trade(self.transactions[out_trade_no])

    @staticmethod
    def _public_trade(trade: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in trade.items() if k not in ("request", "prepay_id", "refunded")}
        shown["amount"] = dict(trade["amount"])
        shown["payer"] = dict(trade["payer"])
        return shown

    # -- the trade bill ----------------------------------------------------------------------
    def bill_file(self, day: date) -> bytes | None:
        """The day's ALL bill as WeChat writes it (None when there was nothing that day)."""
        lines = []
        sign = self.bill_currency_sign
        with self.lock:
            for no, trade in sorted(self.transactions.items()):
                if trade.get("success_time", "")[:10] != day.isoformat():
                    continue
                total = self.bill_amount_overrides.get(no, trade["amount"]["total"])
                lines.append([trade["success_time"][:19].replace("T", " "), APPID, MCHID, "0",
                              "", trade["transaction_id"], no, trade["payer"]["openid"],
                              "JSAPI", "SUCCESS", "OTHERS", "CNY", sign + yuan(total), "0.00",
                              "0", "0", "0.00", "0.00", "", "", trade["request"]["description"],
                              trade.get("attach", ""), "0.00000", "0.60%", sign + yuan(total),
                              "0.00", ""])
            for no, refund in sorted(self.refunds.items()):
                if refund["status"] != "SUCCESS" or refund["success_time"][:10] != day.isoformat():
                    continue
                trade = self.transactions[refund["out_trade_no"]]
                amount = refund["amount"]
                lines.append([refund["success_time"][:19].replace("T", " "), APPID, MCHID, "0",
                              "", refund["transaction_id"], refund["out_trade_no"],
                              trade["payer"]["openid"], "JSAPI", "REFUND", "OTHERS", "CNY",
                              "0.00", "0.00", refund["refund_id"], no,
                              sign + yuan(amount["refund"]), "0.00", "ORIGINAL", "SUCCESS",
                              trade["request"]["description"], trade.get("attach", ""),
                              "0.00000", "0.60%", sign + yuan(amount["total"]),
                              sign + yuan(amount["refund"]), ""])
            lines.extend(self.bill_extra_lines)
        if not lines:
            return None
        text = [BILL_HEADER] + [",".join("`" + field for field in line) for line in lines]
        text += [BILL_SUMMARY, f"`{len(lines)},`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00"]
        return ("\r\n".join(text) + "\r\n").encode()


class FakePayHandler(tornado.web.RequestHandler):
    def initialize(self, state: FakeWeChatPayState) -> None:
        self.state = state

    async def prepare(self) -> None:
        request = self.request
        try:
            body = json.loads(request.body) if request.body else None
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        self.body = body
        query = {k: v[-1].decode() for k, v in request.query_arguments.items()}
        with self.state.lock:
            self.state.requests.append(RecordedRequest(
                request.method or "", request.path, query, body, dict(request.headers)))
            self.state.sent.append((request.method or "", request.uri or "", request.body,
                                    request.headers.get("Authorization", "")))
        problem = authorization_problem(request.method or "", request.uri or "", request.body,
                                        request.headers.get("Authorization", ""))
        if problem is not None:
            with self.state.lock:
                self.state.refused.append(problem)
            self.reply(401, {"code": "SIGN_ERROR", "message": f"签名错误: {problem}"},
                       signed=False)
            return
        with self.state.lock:
            queue = self.state.canned.get(request.path)
            item = queue.popleft() if queue else None
        if item is not None:
            status, canned, delay, signed = item
            if delay:
                await asyncio.sleep(delay)
            self.reply(status, canned, signed=signed)

    def reply(self, status: int, data: Any, *, signed: bool = True,
              signer: Signer | None = None) -> None:
        body = b"" if data is None else json.dumps(data, ensure_ascii=False).encode()
        self.set_status(status)
        if signed:
            with self.state.lock:
                tamper = self.state.tamper_replies > 0
                self.state.tamper_replies -= 1 if tamper else 0
            for name, value in self.state.signed_headers(body, signer=signer,
                                                         tamper=tamper).items():
                self.set_header(name, value)
        if body:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(body)
        else:
            self.clear_header("Content-Type")
            self.finish()

    def error(self, status: int, code: str, message: str) -> None:
        self.reply(status, {"code": code, "message": message})

    def check_xsrf_cookie(self) -> None:
        pass


class Prepay(FakePayHandler):
    async def post(self) -> None:
        body = self.body if isinstance(self.body, dict) else {}
        try:
            out_trade_no = str(body["out_trade_no"])
            total = body["amount"]["total"]
            openid = str(body["payer"]["openid"])
            assert isinstance(total, int) and total > 0 and body["amount"]["currency"] == "CNY"
            assert body["description"] and body["notify_url"].startswith(("http://", "https://"))
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", body["time_expire"])
        except (KeyError, TypeError, AssertionError, AttributeError):
            return self.error(400, "PARAM_ERROR", "参数错误")
        if body.get("mchid") != MCHID or body.get("appid") != APPID:
            return self.error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        with self.state.lock:
            trade = self.state.transactions.get(out_trade_no)
            if trade is None:
                trade = {"appid": APPID, "mchid": MCHID, "out_trade_no": out_trade_no,
                         "trade_type": "JSAPI", "trade_state": "NOTPAY",
                         "trade_state_desc": "未支付", "attach": body.get("attach", ""),
                         "payer": {"openid": openid},
                         "amount": {"total": total, "currency": "CNY"},
                         "request": body, "prepay_id": "wx" + secrets.token_hex(15),
                         "refunded": 0}
                self.state.transactions[out_trade_no] = trade
            elif trade["trade_state"] in ("SUCCESS", "REFUND"):
                return self.error(403, "ORDERPAID", "该订单已支付")
            elif trade["trade_state"] == "CLOSED":
                return self.error(400, "ORDERCLOSED", "该订单已关闭")
            elif trade["request"] != body:
                return self.error(400, "INVALID_REQUEST", "201 商户订单号重复")
            prepay_id = trade["prepay_id"]
        self.reply(200, {"prepay_id": prepay_id})


class Transaction(FakePayHandler):
    async def get(self, out_trade_no: str) -> None:
        if self.get_query_argument("mchid", "") != MCHID:
            return self.error(400, "PARAM_ERROR", "mchid 错误")
        with self.state.lock:
            trade = self.state.transactions.get(out_trade_no)
            shown = self.state._public_trade(trade) if trade else None
        if shown is None:
            return self.error(404, "ORDER_NOT_EXIST", "订单不存在")
        self.reply(200, shown)


class Close(FakePayHandler):
    async def post(self, out_trade_no: str) -> None:
        if not isinstance(self.body, dict) or self.body.get("mchid") != MCHID:
            return self.error(400, "PARAM_ERROR", "mchid 错误")
        with self.state.lock:
            trade = self.state.transactions.get(out_trade_no)
            state = trade["trade_state"] if trade else None
            if state == "NOTPAY":
                trade.update(trade_state="CLOSED", trade_state_desc="已关闭")  # type: ignore[union-attr]
        if state is None:
            return self.error(404, "ORDER_NOT_EXIST", "订单不存在")
        if state in ("SUCCESS", "REFUND"):
            return self.error(400, "ORDERPAID", "订单已支付")
        self.reply(204, None)


class Refunds(FakePayHandler):
    async def post(self) -> None:
        body = self.body if isinstance(self.body, dict) else {}
        try:
            out_trade_no, out_refund_no = str(body["out_trade_no"]), str(body["out_refund_no"])
            amount, total = body["amount"]["refund"], body["amount"]["total"]
            assert isinstance(amount, int) and isinstance(total, int)
            assert body["amount"]["currency"] == "CNY"
        except (KeyError, TypeError, AssertionError):
            return self.error(400, "PARAM_ERROR", "参数错误")
        with self.state.lock:
            existing = self.state.refunds.get(out_refund_no)
            trade = self.state.transactions.get(out_trade_no)
            if existing is not None:
                refund = existing
            elif trade is None or trade["trade_state"] not in ("SUCCESS", "REFUND"):
                return self.error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
            elif total != trade["amount"]["total"]:
                return self.error(400, "PARAM_ERROR", "订单金额或退款金额与之前请求不一致")
            elif amount <= 0 or trade["refunded"] + amount > total:
                return self.error(403, "NOT_ENOUGH", "可退金额不足")
            else:
                trade["refunded"] += amount
                trade.update(trade_state="REFUND", trade_state_desc="转入退款")
                refund = {
                    "refund_id": "50" + "".join(secrets.choice("0123456789") for _ in range(27)),
                    "out_refund_no": out_refund_no, "transaction_id": trade["transaction_id"],
                    "out_trade_no": out_trade_no, "mchid": MCHID, "channel": "ORIGINAL",
                    "user_received_account": "支付用户零钱", "create_time": china_time(),
                    "success_time": "", "status": "PROCESSING", "funds_account": "AVAILABLE",
                    "amount": {"total": total, "refund": amount, "payer_total": total,
                               "payer_refund": amount, "settlement_refund": amount,
                               "settlement_total": total, "discount_refund": 0,
                               "currency": "CNY", "refund_fee": 0},
                    "notify_url": body.get("notify_url", ""), "reason": body.get("reason", ""),
                }
                self.state.refunds[out_refund_no] = refund
            shown = {k: v for k, v in refund.items() if k not in ("notify_url", "reason")}
        self.reply(200, shown)


class Refund(FakePayHandler):
    async def get(self, out_refund_no: str) -> None:
        with self.state.lock:
            refund = self.state.refunds.get(out_refund_no)
            shown = {k: v for k, v in refund.items() if k not in ("notify_url", "reason")} \
                if refund else None
        if shown is None:
            return self.error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        self.reply(200, shown)


class TradeBill(FakePayHandler):
    async def get(self) -> None:
        try:
            day = date.fromisoformat(self.get_query_argument("bill_date", ""))
        except ValueError:
            return self.error(400, "PARAM_ERROR", "bill_date 格式错误")
        if self.get_query_argument("bill_type", "ALL") != "ALL":
            return self.error(400, "PARAM_ERROR", "only ALL is faked")
        data = self.state.bill_file(day)
        if data is None:
            return self.error(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        token = secrets.token_urlsafe(12)
        digest = hashlib.sha1(data).hexdigest()
        with self.state.lock:
            self.state.bills[token] = data
            if self.state.corrupt_bill_hash:
                digest = hashlib.sha1(data + b"x").hexdigest()
        self.reply(200, {"hash_type": "SHA1", "hash_value": digest,
                         "download_url": f"{self.state.base_url}/v3/billdownload/file?"
                                         f"token={token}&tartype=none"})


class BillDownload(FakePayHandler):
    async def get(self) -> None:
        with self.state.lock:
            data = self.state.bills.get(self.get_query_argument("token", ""))
        if data is None:
            return self.error(404, "NOT_FOUND", "no such bill")
        # WeChat does not sign bill files: their hash is in the tradebill reply.
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)


class Certificates(FakePayHandler):
    async def get(self) -> None:
        entries = []
        with self.state.lock:
            served = list(self.state.served_certificates)
            current = self.state.current_certificate
        for signer in served:
            certificate = x509.load_pem_x509_certificate(signer.certificate_pem.encode())
            nonce = secrets.token_hex(6)
            entries.append({
                "serial_no": signer.serial,
                "effective_time": china_time(certificate.not_valid_before_utc),
                "expire_time": china_time(certificate.not_valid_after_utc),
                "encrypt_certificate": {
                    "algorithm": "AEAD_AES_256_GCM", "nonce": nonce,
                    "associated_data": "certificate",
                    "ciphertext": aead_encrypt(APIV3_KEY, nonce, signer.certificate_pem.encode(),
                                               "certificate")}})
        # Signed with the newest certificate, whatever replies are signed with meanwhile.
        self.reply(200, {"data": entries}, signer=current)


def make_fake_wechatpay_app(state: FakeWeChatPayState) -> tornado.web.Application:
    kw = {"state": state}
    return tornado.web.Application([
        (r"/v3/pay/transactions/jsapi", Prepay, kw),
        (r"/v3/pay/transactions/out-trade-no/([^/]+)", Transaction, kw),
        (r"/v3/pay/transactions/out-trade-no/([^/]+)/close", Close, kw),
        (r"/v3/refund/domestic/refunds", Refunds, kw),
        (r"/v3/refund/domestic/refunds/([^/]+)", Refund, kw),
        (r"/v3/bill/tradebill", TradeBill, kw),
        (r"/v3/billdownload/file", BillDownload, kw),
        (r"/v3/certificates", Certificates, kw),
    ])


class FakeWeChatPay:
    """The running fake: `base_url` for settings, `state` for tests."""

    def __init__(self) -> None:
        self.state = FakeWeChatPayState()
        self.server = BackgroundServer(make_fake_wechatpay_app(self.state), "wechatpay")
        self.base_url = self.server.base_url
        self.state.base_url = self.base_url

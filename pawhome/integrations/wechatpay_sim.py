"""A simulated WeChat Pay for development (payment_provider = "simulated", `make run`).

The real client talks to it through an httpx transport, so requests are signed and replies
verified exactly as with WeChat: it answers the v3 paths the client uses from state in Redis
(shared by a gateway and its workers) and signs with development keys made on first use under
`wechatpay_sim_dir`. `build_payment_notification` / `build_refund_notification` play the
payer and WeChat: they settle the transaction or refund and return a real signed, encrypted
notify for the same notify code path. Never for production (Settings.check_production).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pawhome.integrations import wechatpay_crypto as crypto
from pawhome.platform.cache import Cache
from settings import Settings

SIMULATED_API_BASE = "https://wechatpay.simulated.invalid"
STATE_TTL_SECONDS = 30 * 86400
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class DevKeys:
    """The simulated provider's keys: the merchant's (we sign with it) and the platform's
    (the simulator signs with it, as a public key id and as a certificate)."""
    merchant_pem: str
    merchant_serial: str
    platform_key: rsa.RSAPrivateKey
    platform_public_pem: str
    public_key_id: str
    certificate_pem: str
    apiv3_key: str

    @property
    def merchant_public_key(self) -> rsa.RSAPublicKey:
        return crypto.load_private_key(self.merchant_pem).public_key()


_keys_by_dir: dict[str, DevKeys] = {}
_keys_lock = threading.Lock()


def dev_keys(directory: str) -> DevKeys:
    """The development keys kept in `directory`, made there on first use. Processes racing
    to make them agree: each writes a complete set aside, and one rename wins."""
    with _keys_lock:
        keys = _keys_by_dir.get(directory)
        if keys is None:
            path = Path(directory)
            if not (path / "ids.json").exists():
                _make_dev_keys(path)
            keys = _read_dev_keys(path)
            _keys_by_dir[directory] = keys
        return keys


def _make_dev_keys(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wechatpay-sim-", dir=path.parent))
    try:
        merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        platform = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Simulated WeChat Pay")])
        now = datetime.now(UTC)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(platform.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - timedelta(days=1))
                       .not_valid_after(now + timedelta(days=3650))
                       .sign(platform, hashes.SHA256()))
        (staging / "merchant.pem").write_bytes(_private_pem(merchant))
        (staging / "platform.pem").write_bytes(_private_pem(platform))
        (staging / "platform_cert.pem").write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM))
        (staging / "ids.json").write_text(json.dumps({
            "merchant_serial": crypto.serial_hex(x509.random_serial_number()),
            "public_key_id": "PUB_KEY_ID_" + "".join(secrets.choice("0123456789")
                                                    for _ in range(24)),
            "apiv3_key": secrets.token_hex(16),
        }))
        os.chmod(staging, 0o700)
        # Another process may have made them first: then the rename fails and theirs are used.
        with contextlib.suppress(OSError):
            staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _read_dev_keys(path: Path) -> DevKeys:
    ids = json.loads((path / "ids.json").read_text())
    platform_pem = (path / "platform.pem").read_text()
    platform = crypto.load_private_key(platform_pem)
    public_pem = platform.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return DevKeys(merchant_pem=(path / "merchant.pem").read_text(),
                   merchant_serial=str(ids["merchant_serial"]), platform_key=platform,
                   platform_public_pem=public_pem, public_key_id=str(ids["public_key_id"]),
                   certificate_pem=(path / "platform_cert.pem").read_text(),
                   apiv3_key=str(ids["apiv3_key"]))


def china_time(seconds: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, CHINA)
    return moment.isoformat(timespec="seconds")


class SimulatedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands every request to the simulator."""

    def __init__(self, simulator: WeChatPaySimulator) -> None:
        self.simulator = simulator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return await self.simulator.handle(request)


class WeChatPaySimulator:
    """The simulated WeChat Pay behind one process's client (see wechatpay.client_for)."""

    def __init__(self, settings: Settings, cache: Cache) -> None:
        self.settings = settings
        self.cache = cache
        self.keys = dev_keys(settings.wechatpay_sim_dir)
        self.mchid = settings.wechatpay_mchid
        self.appid = settings.wechatpay_appid or settings.wechat_appid
        self._merchant_public_key = self.keys.merchant_public_key

    def client_settings(self) -> Settings:
        """The settings the client uses against this simulator: its keys and address."""
        return self.settings.model_copy(update={
            "wechatpay_api_base": SIMULATED_API_BASE,
            "wechatpay_private_key": self.keys.merchant_pem,
            "wechatpay_cert_serial": self.keys.merchant_serial,
            "wechatpay_apiv3_key": self.keys.apiv3_key,
            "wechatpay_public_key": self.keys.platform_public_pem,
            "wechatpay_public_key_id": self.keys.public_key_id,
        })

    def transport(self) -> SimulatedTransport:
        return SimulatedTransport(self)

    # -- the payer and WeChat's notifies ----------------------------------------------------
    async def build_payment_notification(self, out_trade_no: str) -> tuple[dict[str, str],
                                                                           bytes]:
        """Pay the transaction (if still unpaid) as its payer would and return WeChat's
        TRANSACTION.SUCCESS notify for it: (headers, body), signed and encrypted."""
        trade = await self._load("trade", out_trade_no)
        if trade is None:
            raise LookupError(f"no simulated transaction {out_trade_no}")
        if trade["trade_state"] == "NOTPAY":
            now = time.time()
            expire = trade["params"].get("time_expire")
            if expire and datetime.fromisoformat(str(expire)).timestamp() < now:
                raise ValueError(f"simulated transaction {out_trade_no} has expired")
            trade.update(trade_state="SUCCESS", trade_state_desc="支付成功",
                         transaction_id=_transaction_id(now), success_time=china_time(now),
                         bank_type="OTHERS")
            trade["amount"]["payer_total"] = trade["amount"]["total"]
            await self._save("trade", out_trade_no, trade)
            await self._add_to_bill(now, f"pay:{out_trade_no}")
        elif trade["trade_state"] not in ("SUCCESS", "REFUND"):
            raise ValueError(f"simulated transaction {out_trade_no} is {trade['trade_state']}")
        return self._notification("TRANSACTION.SUCCESS", "支付成功", "transaction",
                                  _public_trade(trade))

    async def build_refund_notification(self, out_refund_no: str) -> tuple[dict[str, str],
                                                                           bytes]:
        """Complete the refund (if still processing) and return WeChat's REFUND.SUCCESS
        notify for it: (headers, body), signed and encrypted."""
        refund = await self._load("refund", out_refund_no)
        if refund is None:
            raise LookupError(f"no simulated refund {out_refund_no}")
        if refund["status"] == "PROCESSING":
            now = time.time()
            refund.update(status="SUCCESS", success_time=china_time(now))
            await self._save("refund", out_refund_no, refund)
            await self._add_to_bill(now, f"refund:{out_refund_no}")
        resource = {key: refund[key] for key in (
            "mchid", "out_trade_no", "transaction_id", "out_refund_no", "refund_id",
            "success_time", "user_received_account", "amount")}
        resource["refund_status"] = refund["status"]
        return self._notification(f"REFUND.{refund['status']}", "退款成功", "refund", resource)

    def _notification(self, event_type: str, summary: str, original_type: str,
                      resource: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        nonce = secrets.token_hex(6)  # 12 characters, as WeChat's
        body = json.dumps({
            "id": str(uuid.uuid4()), "create_time": china_time(), "event_type": event_type,
            "resource_type": "encrypt-resource", "summary": summary,
            "resource": {
                "original_type": original_type, "algorithm": crypto.AEAD_ALGORITHM,
                "associated_data": original_type, "nonce": nonce,
                "ciphertext": crypto.aead_encrypt(
                    self.keys.apiv3_key, nonce=nonce, associated_data=original_type,
                    plaintext=json.dumps(resource, ensure_ascii=False).encode()),
            },
        }, ensure_ascii=False).encode()
        return self._signed_headers(body), body

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), crypto.new_nonce()
        return {
            "Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": self.keys.public_key_id,
            "Wechatpay-Signature": crypto.sign(self.keys.platform_key,
                                               crypto.response_message(timestamp, nonce, body)),
            "Wechatpay-Signature-Type": crypto.AUTH_SCHEMA,
            "Request-ID": uuid.uuid4().hex,
        }

    # -- the v3 API --------------------------------------------------------------------------
    async def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one API request as WeChat Pay would."""
        path = request.url.raw_path.decode()
        if not self._signed_by_merchant(request, path):
            return self._reply(401, {"code": "SIGN_ERROR", "message": "签名错误"}, sign=False)
        route, _, query = path.partition("?")
        parts = route.strip("/").split("/")
        body: Any = None
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                return self._reply(400, {"code": "PARAM_ERROR", "message": "body is not JSON"})
        method = request.method
        if method == "POST" and route == "/v3/pay/transactions/jsapi":
            return await self._prepay(body)
        if parts[:4] == ["v3", "pay", "transactions", "out-trade-no"] and len(parts) >= 5:
            if method == "GET" and len(parts) == 5:
                return await self._query_trade(parts[4])
            if method == "POST" and len(parts) == 6 and parts[5] == "close":
                return await self._close(parts[4])
        if route == "/v3/refund/domestic/refunds" and method == "POST":
            return await self._refund(body)
        if parts[:4] == ["v3", "refund", "domestic", "refunds"] and len(parts) == 5:
            return await self._query_refund(parts[4])
        if route == "/v3/bill/tradebill" and method == "GET":
            return await self._trade_bill(parse_qs(query).get("bill_date", [""])[0])
        if route == "/v3/billdownload/file" and method == "GET":
            return await self._download_bill(parse_qs(query).get("token", [""])[0])
        if route == "/v3/certificates" and method == "GET":
            return self._certificates()
        return self._reply(404, {"code": "NOT_FOUND", "message": "no such API"})

    def _signed_by_merchant(self, request: httpx.Request, path: str) -> bool:
        fields = crypto.parse_authorization(request.headers.get("authorization", ""))
        if fields is None or fields.get("mchid") != self.mchid \
                or fields.get("serial_no") != self.keys.merchant_serial:
            return False
        message = crypto.request_message(request.method, path, fields.get("timestamp", ""),
                                         fields.get("nonce_str", ""), request.content)
        return crypto.verify(self._merchant_public_key, message, fields.get("signature", ""))

    async def _prepay(self, body: Any) -> httpx.Response:
        try:
            out_trade_no = str(body["out_trade_no"])
            total = int(body["amount"]["total"])
            openid = str(body["payer"]["openid"])
        except (KeyError, TypeError, ValueError):
            return self._reply(400, {"code": "PARAM_ERROR", "message": "参数错误"})
        if body.get("mchid") != self.mchid or body.get("appid") != self.appid:
            return self._reply(400, {"code": "PARAM_ERROR", "message": "mchid 与 appid 不匹配"})
        params = {k: body.get(k) for k in ("description", "time_expire", "attach", "notify_url")}
        trade = await self._load("trade", out_trade_no)
        if trade is not None:
            if trade["trade_state"] in ("SUCCESS", "REFUND"):
                return self._reply(403, {"code": "ORDERPAID", "message": "该订单已支付"})
            if trade["trade_state"] == "CLOSED":
                return self._reply(400, {"code": "ORDERCLOSED", "message": "该订单已关闭"})
            if trade["amount"]["total"] != total or trade["payer"]["openid"] != openid \
                    or trade["params"] != params:
                return self._reply(400, {"code": "INVALID_REQUEST",
                                         "message": "201 商户订单号重复"})
            return self._reply(200, {"prepay_id": trade["prepay_id"]})
        trade = {
            "appid": self.appid, "mchid": self.mchid, "out_trade_no": out_trade_no,
            "trade_type": "JSAPI", "trade_state": "NOTPAY", "trade_state_desc": "未支付",
            "attach": body.get("attach") or "", "payer": {"openid": openid},
            "amount": {"total": total, "currency": "CNY"}, "params": params,
            "prepay_id": "wx" + secrets.token_hex(16), "refunded": 0,
        }
        await self._save("trade", out_trade_no, trade)
        return self._reply(200, {"prepay_id": trade["prepay_id"]})

    async def _query_trade(self, out_trade_no: str) -> httpx.Response:
        trade = await self._load("trade", out_trade_no)
        if trade is None:
            return self._reply(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
        return self._reply(200, _public_trade(trade))

    async def _close(self, out_trade_no: str) -> httpx.Response:
        trade = await self._load("trade", out_trade_no)
        if trade is None:
            return self._reply(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
        if trade["trade_state"] in ("SUCCESS", "REFUND"):
            return self._reply(400, {"code": "ORDERPAID", "message": "订单已支付"})
        trade.update(trade_state="CLOSED", trade_state_desc="已关闭")
        await self._save("trade", out_trade_no, trade)
        return self._reply(204, None)

    async def _refund(self, body: Any) -> httpx.Response:
        try:
            out_trade_no, out_refund_no = str(body["out_trade_no"]), str(body["out_refund_no"])
            amount, total = int(body["amount"]["refund"]), int(body["amount"]["total"])
        except (KeyError, TypeError, ValueError):
            return self._reply(400, {"code": "PARAM_ERROR", "message": "参数错误"})
        existing = await self._load("refund", out_refund_no)
        if existing is not None:
            return self._reply(200, _public_refund(existing))
        trade = await self._load("trade", out_trade_no)
        if trade is None or trade["trade_state"] not in ("SUCCESS", "REFUND"):
            return self._reply(404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"})
        if total != trade["amount"]["total"]:
            return self._reply(400, {"code": "PARAM_ERROR", "message": "订单金额不一致"})
        if amount <= 0 or trade["refunded"] + amount > total:
            return self._reply(403, {"code": "NOT_ENOUGH", "message": "可退金额不足"})
        trade["refunded"] += amount
        trade.update(trade_state="REFUND", trade_state_desc="转入退款")
        await self._save("trade", out_trade_no, trade)
        refund = {
            "mchid": self.mchid, "out_trade_no": out_trade_no,
            "transaction_id": trade["transaction_id"], "out_refund_no": out_refund_no,
            "refund_id": "50" + str(int(time.time() * 1000)) + secrets.token_hex(4),
            "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
            "create_time": china_time(), "success_time": "", "status": "PROCESSING",
            "funds_account": "AVAILABLE", "reason": body.get("reason") or "",
            "amount": {"total": total, "refund": amount, "payer_total": total,
                       "payer_refund": amount, "settlement_total": total,
                       "settlement_refund": amount, "discount_refund": 0,
                       "currency": "CNY"},
        }
        await self._save("refund", out_refund_no, refund)
        return self._reply(200, _public_refund(refund))

    async def _query_refund(self, out_refund_no: str) -> httpx.Response:
        refund = await self._load("refund", out_refund_no)
        if refund is None:
            return self._reply(404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"})
        return self._reply(200, _public_refund(refund))

    async def _trade_bill(self, bill_date: str) -> httpx.Response:
        try:
            day = date.fromisoformat(bill_date)
        except ValueError:
            return self._reply(400, {"code": "PARAM_ERROR", "message": "bill_date 格式错误"})
        csv = await self._bill_csv(day)
        if csv is None:
            return self._reply(400, {"code": "NO_STATEMENT_EXIST", "message": "账单不存在"})
        return self._reply(200, {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(csv, usedforsecurity=False).hexdigest(),
            "download_url": f"{SIMULATED_API_BASE}/v3/billdownload/file?token={day}"})

    async def _download_bill(self, token: str) -> httpx.Response:
        try:
            csv = await self._bill_csv(date.fromisoformat(token))
        except ValueError:
            csv = None
        if csv is None:
            return self._reply(404, {"code": "NOT_FOUND", "message": "账单不存在"})
        return httpx.Response(200, content=csv, headers={"Content-Type": "text/plain"})

    async def _bill_csv(self, day: date) -> bytes | None:
        events = await self.cache.redis.smembers(self._key("bill", day.isoformat()))
        lines = [",".join(_BILL_HEADER)]
        for event in sorted(e.decode() if isinstance(e, bytes) else e for e in events):
            kind, _, number = event.partition(":")
            line = await (self._pay_line(number) if kind == "pay" else self._refund_line(number))
            if line is not None:
                lines.append(",".join("`" + field for field in line))
        if len(lines) == 1:
            return None
        count = len(lines) - 1
        lines.append(",".join(_BILL_SUMMARY))
        lines.append(f"`{count},`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00")
        return ("\r\n".join(lines) + "\r\n").encode()

    async def _pay_line(self, out_trade_no: str) -> list[str] | None:
        trade = await self._load("trade", out_trade_no)
        if trade is None or not trade.get("transaction_id"):
            return None
        total = _yuan(trade["amount"]["total"])
        return [_bill_time(trade["success_time"]), self.appid, self.mchid, "0", "",
                trade["transaction_id"], out_trade_no, trade["payer"]["openid"], "JSAPI",
                "SUCCESS", "OTHERS", "CNY", total, "0.00", "0", "0", "0.00", "0.00", "", "",
                str(trade["params"].get("description") or ""), trade["attach"], "0.00000",
                "0.60%", total, "0.00", ""]

    async def _refund_line(self, out_refund_no: str) -> list[str] | None:
        refund = await self._load("refund", out_refund_no)
        if refund is None:
            return None
        trade = await self._load("trade", refund["out_trade_no"]) or {}
        amount = refund["amount"]
        return [_bill_time(refund["success_time"]), self.appid, self.mchid, "0", "",
                refund["transaction_id"], refund["out_trade_no"],
                trade.get("payer", {}).get("openid", ""), "JSAPI", "REFUND", "OTHERS", "CNY",
                "0.00", "0.00", refund["refund_id"], out_refund_no, _yuan(amount["refund"]),
                "0.00", "ORIGINAL", refund["status"],
                str(trade.get("params", {}).get("description") or ""),
                trade.get("attach", ""), "0.00000", "0.60%", _yuan(amount["total"]),
                _yuan(amount["refund"]), ""]

    def _certificates(self) -> httpx.Response:
        certificate = x509.load_pem_x509_certificate(self.keys.certificate_pem.encode())
        nonce = secrets.token_hex(6)
        return self._reply(200, {"data": [{
            "serial_no": crypto.serial_hex(certificate.serial_number),
            "effective_time": certificate.not_valid_before_utc.astimezone(CHINA).isoformat(),
            "expire_time": certificate.not_valid_after_utc.astimezone(CHINA).isoformat(),
            "encrypt_certificate": {
                "algorithm": crypto.AEAD_ALGORITHM, "nonce": nonce,
                "associated_data": "certificate",
                "ciphertext": crypto.aead_encrypt(
                    self.keys.apiv3_key, nonce=nonce, associated_data="certificate",
                    plaintext=self.keys.certificate_pem.encode()),
            }}]}, serial=crypto.serial_hex(certificate.serial_number))

    def _reply(self, status: int, data: Any, *, sign: bool = True,
               serial: str | None = None) -> httpx.Response:
        body = b"" if data is None else json.dumps(data, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if body else {}
        if sign:
            headers.update(self._signed_headers(body))
            if serial is not None:  # the certificate list is signed with its certificate
                headers["Wechatpay-Serial"] = serial
        return httpx.Response(status, content=body, headers=headers)

    # -- state -------------------------------------------------------------------------------
    def _key(self, kind: str, name: str) -> str:
        return self.cache.key("wechatpay_sim", self.mchid, kind, name)

    async def _load(self, kind: str, name: str) -> dict[str, Any] | None:
        raw = await self.cache.redis.get(self._key(kind, name))
        return json.loads(raw) if raw else None

    async def _save(self, kind: str, name: str, value: dict[str, Any]) -> None:
        await self.cache.redis.set(self._key(kind, name), json.dumps(value),
                                   ex=STATE_TTL_SECONDS)

    async def _add_to_bill(self, seconds: float, event: str) -> None:
        day = datetime.fromtimestamp(seconds, CHINA).date().isoformat()
        key = self._key("bill", day)
        await self.cache.redis.sadd(key, event)
        await self.cache.redis.expire(key, STATE_TTL_SECONDS)


_BILL_HEADER = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注")
_BILL_SUMMARY = ("总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
                 "订单总金额", "申请退款总金额")


def _public_trade(trade: dict[str, Any]) -> dict[str, Any]:
    """A transaction as WeChat's query and notify show it (no internal fields)."""
    return {k: v for k, v in trade.items() if k not in ("params", "prepay_id", "refunded")}


def _public_refund(refund: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in refund.items() if k != "reason"}


def _transaction_id(seconds: float) -> str:
    stamp = datetime.fromtimestamp(seconds, CHINA).strftime("%Y%m%d")
    return "4200" + "".join(secrets.choice("0123456789") for _ in range(6)) + stamp + \
        "".join(secrets.choice("0123456789") for _ in range(10))


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _bill_time(rfc3339_time: str) -> str:
    if not rfc3339_time:
        return ""
    return datetime.fromisoformat(rfc3339_time).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")

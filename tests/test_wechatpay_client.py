"""The WeChat Pay v3 client against the fake WeChat Pay server: every call, request signatures
and paySign checked by the `wechatpayv3` SDK as an independent oracle, reply verification in
both modes (platform certificates, WeChat Pay public key), certificate download and rotation,
notifies accepted and refused, transient failures, trade bills to the fen, and the simulated
provider end to end."""
from __future__ import annotations

import asyncio
import base64
import logging
import re
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import wechatpayv3.utils as sdk_utils
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from wechatpayv3 import WeChatPay, WeChatPayType

from pawhome.integrations import wechatpay_crypto as crypto
from pawhome.integrations.wechatpay import (
    NotifyRejected,
    WeChatPayClient,
    WeChatPayError,
    client_for,
    parse_trade_bill,
    rfc3339,
    yuan_to_fen,
)
from pawhome.platform.resources import Resources
from settings import Settings
from tests.fakes.wechatpay import (
    APIV3_KEY,
    APPID,
    MCHID,
    MERCHANT_KEY,
    MERCHANT_KEY_PEM,
    MERCHANT_SERIAL,
    PLATFORM,
    PLATFORM_NEXT,
    PUBLIC_KEY_ID,
    PUBLIC_KEY_PEM,
    private_pem,
)
from tests.fakes.wechatpay import _new_key as new_rsa_key

CHINA = timezone(timedelta(hours=8))
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
PUBLIC_KEY_MODE = {"wechatpay_public_key": PUBLIC_KEY_PEM,
                   "wechatpay_public_key_id": PUBLIC_KEY_ID}


def make_client(resources: Resources, **overrides) -> WeChatPayClient:
    settings = resources.settings.model_copy(update=overrides)
    return WeChatPayClient(settings, resources.http)


def new_no(prefix: str = "T") -> str:
    return prefix + uuid.uuid4().hex[:20].upper()


async def prepay(client: WeChatPayClient, out_trade_no: str | None = None, amount: int = 1234,
                 description: str = "猫粮 2kg", **extra) -> tuple[str, str]:
    out_trade_no = out_trade_no or new_no()
    prepay_id = await client.jsapi_prepay(
        out_trade_no=out_trade_no, description=description, amount=amount,
        payer_openid=OPENID, time_expire=datetime.now(UTC) + timedelta(minutes=30), **extra)
    return out_trade_no, prepay_id


def sdk(cert_dir: Path | None = None) -> WeChatPay:
    """The wechatpayv3 SDK as WeChat's own reference: public-key mode, or certificate mode
    with the platform certificates read from `cert_dir` (it then needs no network)."""
    common = dict(wechatpay_type=WeChatPayType.MINIPROG, mchid=MCHID,
                  private_key=MERCHANT_KEY_PEM, cert_serial_no=MERCHANT_SERIAL, appid=APPID,
                  apiv3_key=APIV3_KEY)
    if cert_dir is None:
        return WeChatPay(**common, public_key=PUBLIC_KEY_PEM, public_key_id=PUBLIC_KEY_ID)
    for signer in (PLATFORM, PLATFORM_NEXT):
        (cert_dir / f"{signer.serial}.pem").write_text(signer.certificate_pem)
    return WeChatPay(**common, cert_dir=str(cert_dir))


# -- requests and their signatures ------------------------------------------------------------

@pytest.mark.gen_test
async def test_prepay_sends_a_jsapi_order_and_returns_the_prepay_id(resources, wechatpay):
    client = client_for(resources)
    expire = datetime(2030, 1, 2, 3, 4, 5)  # naive: UTC
    prepay_id = await client.jsapi_prepay(
        out_trade_no="PH20300102A1", description="猫粮 2kg", amount=1999, payer_openid=OPENID,
        time_expire=expire, attach="order:42")
    assert prepay_id.startswith("wx")
    sent = wechatpay.requests_to("/v3/pay/transactions/jsapi")[-1].body
    assert sent == {
        "appid": APPID, "mchid": MCHID, "description": "猫粮 2kg", "out_trade_no": "PH20300102A1",
        "time_expire": "2030-01-02T11:04:05+08:00", "attach": "order:42",
        "notify_url": resources.settings.wechatpay_notify_url,
        "amount": {"total": 1999, "currency": "CNY"}, "payer": {"openid": OPENID}}
    assert resources.settings.wechatpay_notify_url.endswith("/v1/payments/wechat/notify")
    assert wechatpay.refused == []


@pytest.mark.gen_test
async def test_our_authorization_is_what_the_sdk_computes(resources, wechatpay, monkeypatch):
    await prepay(client_for(resources))
    await client_for(resources).query_by_out_trade_no("NOPE")
    for method, target, body, header in wechatpay.sent[-2:]:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
        # The SDK signs at "now" with a nonce of its own: give it ours, then the
        # (deterministic) PKCS#1 v1.5 signatures must be identical.
        stamp = int(fields["timestamp"])
        monkeypatch.setattr(sdk_utils.time, "time", lambda stamp=stamp: stamp)
        expected = sdk_utils.build_authorization(
            target, method, MCHID, MERCHANT_SERIAL, sdk_utils.load_private_key(MERCHANT_KEY_PEM),
            data=body.decode(), nonce_str=fields["nonce_str"])
        monkeypatch.undo()
        assert header == expected
    assert target.startswith("/v3/pay/transactions/out-trade-no/NOPE?mchid=")


@pytest.mark.gen_test
async def test_pay_sign_is_what_the_sdk_computes(resources, wechatpay):
    client = client_for(resources)
    _, prepay_id = await prepay(client)
    params = client.request_payment_params(prepay_id)
    assert params["appId"] == APPID and params["signType"] == "RSA"
    assert params["package"] == f"prepay_id={prepay_id}"
    assert params["timeStamp"].isdigit() and len(params["nonceStr"]) == 32
    expected = sdk().sign([params["appId"], params["timeStamp"], params["nonceStr"],
                           params["package"]])
    assert params["paySign"] == expected
    message = "\n".join([params["appId"], params["timeStamp"], params["nonceStr"],
                         params["package"]]) + "\n"
    MERCHANT_KEY.public_key().verify(base64.b64decode(params["paySign"]),
                                     message.encode(), padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.gen_test
async def test_a_request_signed_with_another_key_is_refused_by_wechat(resources, wechatpay):
    client = make_client(resources, wechatpay_private_key=private_pem(new_rsa_key()))
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client)
    assert caught.value.status == 401 and caught.value.code == "SIGN_ERROR"
    assert not caught.value.transient
    assert wechatpay.refused == ["signature does not verify"]


def test_time_expire_is_rfc3339_in_china_time():
    assert rfc3339(datetime(2025, 6, 30, 16, 30, tzinfo=UTC)) == "2025-07-01T00:30:00+08:00"
    assert rfc3339(datetime(2025, 6, 30, 16, 30)) == "2025-07-01T00:30:00+08:00"
    assert rfc3339(datetime(2025, 7, 1, 0, 30, tzinfo=CHINA)) == "2025-07-01T00:30:00+08:00"


# -- the calls -------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_prepay_again_reuses_the_prepay_id_and_other_parameters_are_refused(
        resources, wechatpay):
    client = client_for(resources)
    expire = datetime.now(UTC) + timedelta(minutes=30)
    args = dict(out_trade_no=new_no(), description="狗粮", payer_openid=OPENID,
                time_expire=expire)
    first = await client.jsapi_prepay(amount=500, **args)
    assert await client.jsapi_prepay(amount=500, **args) == first
    with pytest.raises(WeChatPayError) as caught:
        await client.jsapi_prepay(amount=501, **args)
    assert caught.value.code == "INVALID_REQUEST" and not caught.value.transient
    with pytest.raises(ValueError):
        await client.jsapi_prepay(amount=0, **args)


@pytest.mark.gen_test
async def test_query_returns_the_transaction_or_none(resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client, amount=2990)
    unpaid = await client.query_by_out_trade_no(out_trade_no)
    assert unpaid["trade_state"] == "NOTPAY" and unpaid["amount"]["total"] == 2990
    wechatpay.pay(out_trade_no)
    paid = await client.query_by_out_trade_no(out_trade_no)
    assert paid["trade_state"] == "SUCCESS" and paid["transaction_id"].startswith("4200")
    assert paid["amount"] == {"total": 2990, "payer_total": 2990, "currency": "CNY",
                              "payer_currency": "CNY"}
    assert paid["payer"] == {"openid": OPENID} and paid["mchid"] == MCHID
    assert paid["appid"] == APPID and paid["success_time"].endswith("+08:00")
    assert await client.query_by_out_trade_no(new_no()) is None


@pytest.mark.gen_test
async def test_close_is_quiet_for_closed_or_unknown_orders_and_loud_for_paid_ones(
        resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client)
    await client.close(out_trade_no)
    assert wechatpay.transaction(out_trade_no)["trade_state"] == "CLOSED"
    await client.close(out_trade_no)  # again
    await client.close(new_no())  # never prepaid
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client, out_trade_no)
    assert caught.value.code == "ORDERCLOSED"
    paid, _ = await prepay(client)
    wechatpay.pay(paid)
    with pytest.raises(WeChatPayError) as caught:
        await client.close(paid)
    assert caught.value.code == "ORDERPAID" and not caught.value.transient


@pytest.mark.gen_test
async def test_refunds_partial_idempotent_queried_and_bounded(resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client, amount=10000)
    wechatpay.pay(out_trade_no)
    refund_no = new_no("R")
    refund = await client.refund(out_refund_no=refund_no, out_trade_no=out_trade_no,
                                 amount=2550, total=10000, reason="少发一袋")
    assert refund["status"] == "PROCESSING" and refund["amount"]["refund"] == 2550
    sent = wechatpay.requests_to("/v3/refund/domestic/refunds")[-1].body
    assert sent["notify_url"].endswith("/v1/payments/wechat/refund-notify")
    assert sent["amount"] == {"refund": 2550, "total": 10000, "currency": "CNY"}
    again = await client.refund(out_refund_no=refund_no, out_trade_no=out_trade_no,
                                amount=2550, total=10000)
    assert again["refund_id"] == refund["refund_id"]
    wechatpay.settle_refund(refund_no)
    queried = await client.query_refund(refund_no)
    assert queried["status"] == "SUCCESS" and queried["refund_id"] == refund["refund_id"]
    assert await client.query_refund(new_no("R")) is None
    with pytest.raises(WeChatPayError) as caught:
        await client.refund(out_refund_no=new_no("R"), out_trade_no=out_trade_no,
                            amount=7451, total=10000)
    assert caught.value.code == "NOT_ENOUGH" and caught.value.status == 403
    with pytest.raises(ValueError):
        await client.refund(out_refund_no=new_no("R"), out_trade_no=out_trade_no,
                            amount=10001, total=10000)


# -- replies we must not trust -----------------------------------------------------------------

@pytest.mark.gen_test
async def test_a_reply_with_a_bad_signature_is_refused(resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client)
    wechatpay.tamper_next_reply()
    with pytest.raises(WeChatPayError) as caught:
        await client.query_by_out_trade_no(out_trade_no)
    assert caught.value.code == "INVALID_REPLY_SIGNATURE" and caught.value.transient


@pytest.mark.gen_test
async def test_an_unsigned_success_is_refused(resources, wechatpay):
    wechatpay.fail_next("/v3/pay/transactions/jsapi", 200, {"prepay_id": "wx-forged"},
                        signed=False)
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client_for(resources))
    assert caught.value.code == "UNSIGNED_REPLY"


@pytest.mark.gen_test
async def test_an_unknown_serial_refreshes_certificates_once_then_is_refused(
        resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client)  # certificates downloaded on the first reply
    assert len(wechatpay.requests_to("/v3/certificates")) == 1
    wechatpay.sign_with = "unknown"
    with pytest.raises(WeChatPayError) as caught:
        await client.query_by_out_trade_no(out_trade_no)
    assert caught.value.code == "UNKNOWN_SERIAL"
    assert len(wechatpay.requests_to("/v3/certificates")) == 2  # the one refresh
    with pytest.raises(WeChatPayError):
        await client.query_by_out_trade_no(out_trade_no)
    # Within the retry interval an unknown serial does not download again.
    assert len(wechatpay.requests_to("/v3/certificates")) == 2


@pytest.mark.gen_test
async def test_certificates_are_downloaded_once_and_again_on_rotation(resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client)
    await client.query_by_out_trade_no(out_trade_no)
    assert len(wechatpay.requests_to("/v3/certificates")) == 1
    assert client.platform_serials() == [PLATFORM.serial]
    wechatpay.rotate_certificate()
    await client.query_by_out_trade_no(out_trade_no)  # signed with the new certificate
    assert len(wechatpay.requests_to("/v3/certificates")) == 2
    assert sorted(client.platform_serials()) == sorted([PLATFORM.serial, PLATFORM_NEXT.serial])
    await client.query_by_out_trade_no(out_trade_no)
    assert len(wechatpay.requests_to("/v3/certificates")) == 2


@pytest.mark.gen_test
async def test_certificates_that_do_not_decrypt_are_not_trusted(resources, wechatpay):
    client = make_client(resources, wechatpay_apiv3_key="k" * 32)
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client)
    assert caught.value.code == "NO_CERTIFICATE"


@pytest.mark.gen_test
async def test_public_key_mode_needs_no_certificates(resources, wechatpay):
    wechatpay.sign_with = "public_key"
    client = make_client(resources, **PUBLIC_KEY_MODE)
    out_trade_no, _ = await prepay(client)
    assert (await client.query_by_out_trade_no(out_trade_no))["trade_state"] == "NOTPAY"
    assert wechatpay.requests_to("/v3/certificates") == []
    # During a switch WeChat may still sign with a certificate: both are honoured.
    wechatpay.sign_with = "certificate"
    assert await client.query_by_out_trade_no(out_trade_no)
    assert len(wechatpay.requests_to("/v3/certificates")) == 1


@pytest.mark.gen_test
async def test_a_public_key_id_we_do_not_hold_is_refused(resources, wechatpay):
    wechatpay.sign_with = "public_key"
    client = make_client(resources, wechatpay_public_key=PUBLIC_KEY_PEM,
                         wechatpay_public_key_id="PUB_KEY_ID_0000000000000000000000000000")
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client)
    assert caught.value.code == "UNKNOWN_SERIAL"
    assert wechatpay.requests_to("/v3/certificates") == []


# -- failures that are worth retrying ----------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("status, code, transient", [
    (500, "SYSTEM_ERROR", True),
    (429, "FREQUENCY_LIMITED", True),
    (400, "SYSTEM_ERROR", True),
    (502, "", True),
    (400, "PARAM_ERROR", False),
    (403, "NO_AUTH", False),
])
async def test_wechat_errors_say_whether_they_are_transient(resources, wechatpay, status, code,
                                                            transient):
    body = {"code": code, "message": "x"} if code else {}
    wechatpay.fail_next("/v3/pay/transactions/jsapi", status, body)
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client_for(resources))
    assert (caught.value.status, caught.value.code, caught.value.transient) == (
        status, code, transient)


@pytest.mark.gen_test
async def test_a_slow_wechat_is_a_transient_timeout(resources, wechatpay, io_loop):
    client = make_client(resources, wechatpay_timeout=0.5)
    wechatpay.fail_next("/v3/pay/transactions/jsapi", 200, {"prepay_id": "wx-late"}, delay=2.0)
    started = io_loop.time()
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client)
    assert io_loop.time() - started < 1.8
    assert caught.value.code == "TIMEOUT" and caught.value.transient and caught.value.status == 0


@pytest.mark.gen_test
async def test_an_unreachable_wechat_is_transient(resources, wechatpay):
    from tests.services import free_port

    client = make_client(resources, wechatpay_api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(WeChatPayError) as caught:
        await client.query_by_out_trade_no("X1")
    assert caught.value.code == "UNREACHABLE" and caught.value.transient


@pytest.mark.gen_test
async def test_an_unconfigured_client_says_so(resources, wechatpay):
    client = make_client(resources, wechatpay_private_key="")
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client)
    assert caught.value.code == "NOT_CONFIGURED" and not caught.value.transient


# -- notifies ---------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_a_payment_notify_is_verified_and_decrypted(resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client, amount=4321)  # certificates loaded on the way
    paid = wechatpay.pay(out_trade_no)
    headers, body = wechatpay.payment_notification(out_trade_no)
    note = client.parse_notification(headers, body)
    assert note.event_type == "TRANSACTION.SUCCESS" and note.resource_type == "encrypt-resource"
    assert note.summary == "支付成功" and note.id and note.create_time
    assert note.resource == paid
    assert note.resource["amount"]["total"] == 4321
    # Header names are case-insensitive (what a server hands over varies).
    lowered = {name.lower(): value for name, value in headers.items()}
    assert client.parse_notification(lowered, body).id == note.id


@pytest.mark.gen_test
async def test_notifies_are_accepted_by_the_sdk_in_both_modes(resources, wechatpay, tmp_path):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client)
    wechatpay.pay(out_trade_no)
    for mode in ("certificate", "public_key"):
        wechatpay.sign_with = mode
        headers, body = wechatpay.payment_notification(out_trade_no)
        oracle = sdk(tmp_path if mode == "certificate" else None)
        decoded = oracle.callback(headers, body)
        assert decoded is not None, mode
        assert decoded["resource"]["out_trade_no"] == out_trade_no
        hostile_headers, hostile_body = wechatpay.payment_notification(
            out_trade_no, variant="bad_signature")
        assert oracle.callback(hostile_headers, hostile_body) is None


@pytest.mark.gen_test
async def test_public_key_mode_notify(resources, wechatpay):
    wechatpay.sign_with = "public_key"
    client = make_client(resources, **PUBLIC_KEY_MODE)
    out_trade_no, _ = await prepay(client)
    wechatpay.pay(out_trade_no)
    headers, body = wechatpay.payment_notification(out_trade_no)
    assert headers["Wechatpay-Serial"] == PUBLIC_KEY_ID
    assert client.parse_notification(headers, body).resource["trade_state"] == "SUCCESS"


@pytest.mark.gen_test
@pytest.mark.parametrize("status", ["SUCCESS", "ABNORMAL", "CLOSED"])
async def test_refund_notifies(resources, wechatpay, status):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client, amount=800)
    wechatpay.pay(out_trade_no)
    refund_no = new_no("R")
    await client.refund(out_refund_no=refund_no, out_trade_no=out_trade_no, amount=300,
                        total=800)
    headers, body = wechatpay.refund_notification(refund_no, status)
    note = client.parse_notification(headers, body)
    assert note.event_type == f"REFUND.{status}"
    assert note.resource["refund_status"] == status
    assert note.resource["out_refund_no"] == refund_no
    assert note.resource["amount"]["refund"] == 300


@pytest.mark.gen_test
@pytest.mark.parametrize("variant, reason", [
    ("bad_signature", "bad_signature"),
    ("stale_timestamp", "stale_timestamp"),
    ("unknown_serial", "unknown_serial"),
    ("tampered_ciphertext", "decrypt_failed"),
    ("wrong_apiv3_key", "decrypt_failed"),
    ("malformed", "malformed"),
    ("missing_headers", "malformed"),
])
async def test_hostile_notifies_are_refused(resources, wechatpay, variant, reason):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client)
    wechatpay.pay(out_trade_no)
    headers, body = wechatpay.payment_notification(out_trade_no, variant=variant)
    with pytest.raises(NotifyRejected) as caught:
        client.parse_notification(headers, body)
    assert caught.value.reason == reason


@pytest.mark.gen_test
async def test_a_notify_moved_in_time_is_judged_by_the_clock_given(resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client)
    wechatpay.pay(out_trade_no)
    headers, body = wechatpay.payment_notification(out_trade_no)
    sent = int(headers["Wechatpay-Timestamp"])
    assert client.parse_notification(headers, body, now=sent + 299)
    with pytest.raises(NotifyRejected, match="stale"):
        client.parse_notification(headers, body, now=sent + 301)
    with pytest.raises(NotifyRejected, match="stale"):
        client.parse_notification(headers, body, now=sent - 301)


@pytest.mark.gen_test
async def test_a_signed_body_that_is_not_a_notify_is_malformed(resources, wechatpay):
    client = client_for(resources)
    await client.refresh_certificates()
    for body in (b"[]", b'{"id": "x", "event_type": "T"}',
                 b'{"id": "x", "event_type": "T", "resource": {"algorithm": "AES"}}'):
        headers = wechatpay.signed_headers(body)
        with pytest.raises(NotifyRejected) as caught:
            client.parse_notification(headers, body)
        assert caught.value.reason == "malformed"


@pytest.mark.gen_test
async def test_a_notify_before_certificates_are_held(resources, wechatpay):
    """parse_notification cannot download (it is synchronous): it refuses and fetches in the
    background, so WeChat's retry passes; receive_notification downloads first."""
    out_trade_no, _ = await prepay(make_client(resources))
    wechatpay.pay(out_trade_no)
    headers, body = wechatpay.payment_notification(out_trade_no)
    fresh = make_client(resources)
    assert (await fresh.receive_notification(headers, body)).resource["out_trade_no"] == \
        out_trade_no
    other = make_client(resources)
    with pytest.raises(NotifyRejected, match="unknown_serial"):
        other.parse_notification(headers, body)
    for _ in range(100):
        if other.platform_serials():
            break
        await asyncio.sleep(0.02)
    assert other.parse_notification(headers, body).resource["out_trade_no"] == out_trade_no


# -- trade bills ------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_trade_bill_rows_to_the_fen(resources, wechatpay):
    client = client_for(resources)
    day = datetime(2025, 3, 1, 10, 0, tzinfo=CHINA)
    amounts = {}
    for amount in (1, 29, 1999, 123456789):  # 0.29 is where floats go wrong
        out_trade_no, _ = await prepay(client, amount=amount)
        wechatpay.pay(out_trade_no, when=day)
        amounts[out_trade_no] = amount
    refunded = next(no for no, amount in amounts.items() if amount == 1999)
    refund_no = new_no("R")
    await client.refund(out_refund_no=refund_no, out_trade_no=refunded, amount=1001,
                        total=1999)
    wechatpay.settle_refund(refund_no, when=day + timedelta(hours=1))
    other_day, _ = await prepay(client, amount=50)
    wechatpay.pay(other_day, when=day + timedelta(days=1))

    rows = await client.trade_bill(date(2025, 3, 1))
    paid = {row["out_trade_no"]: row for row in rows if row["trade_state"] == "SUCCESS"}
    assert {no: row["amount"] for no, row in paid.items()} == amounts
    assert all(isinstance(row["amount"], int) for row in rows)
    assert paid[refunded]["transaction_id"] == wechatpay.transaction(refunded)["transaction_id"]
    assert paid[refunded]["trade_time"] == "2025-03-01 10:00:00"
    [refund_row] = [row for row in rows if row["trade_state"] == "REFUND"]
    assert refund_row["out_trade_no"] == refunded and refund_row["out_refund_no"] == refund_no
    assert refund_row["refund_amount"] == 1001 and refund_row["amount"] == 1999
    assert other_day not in {row["out_trade_no"] for row in rows}
    sent = wechatpay.requests_to("/v3/bill/tradebill")[-1].query
    assert sent == {"bill_date": "2025-03-01", "bill_type": "ALL"}
    # The download was signed like every request.
    assert wechatpay.requests_to("/v3/billdownload/file") and wechatpay.refused == []


@pytest.mark.gen_test
async def test_trade_bill_with_yuan_signs_and_an_empty_day(resources, wechatpay):
    client = client_for(resources)
    wechatpay.bill_currency_sign = "¥"
    out_trade_no, _ = await prepay(client, amount=1234)
    wechatpay.pay(out_trade_no, when=datetime(2025, 4, 2, 9, 0, tzinfo=CHINA))
    [row] = await client.trade_bill(date(2025, 4, 2))
    assert row["amount"] == 1234 and row["settlement_amount"] == 1234
    assert await client.trade_bill(date(2025, 4, 3)) == []


@pytest.mark.gen_test
async def test_a_bill_that_does_not_match_its_hash_is_refused(resources, wechatpay):
    client = client_for(resources)
    out_trade_no, _ = await prepay(client)
    wechatpay.pay(out_trade_no, when=datetime(2025, 5, 5, 9, 0, tzinfo=CHINA))
    wechatpay.corrupt_bill_hash = True
    with pytest.raises(WeChatPayError) as caught:
        await client.trade_bill(date(2025, 5, 5))
    assert caught.value.code == "BILL_HASH_MISMATCH"


def test_bill_parsing_is_exact_and_strict():
    assert [yuan_to_fen(t) for t in ("¥12.34", "￥0.29", "12.3", "0", "", "1,234.50")] == \
        [1234, 29, 1230, 0, 0, 123450]
    with pytest.raises(ValueError):
        yuan_to_fen("0.001")
    with pytest.raises(ValueError):
        yuan_to_fen("twelve")
    header = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
              "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
              "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
              "费率备注")
    line = ("`2025-01-01 10:00:00,`wx1,`1900000109,`0,`,`4200001,`A1,`oX,`JSAPI,`SUCCESS,"
            "`OTHERS,`CNY,`0.29,`0.00,`0,`0,`0.00,`0.00,`,`,`猫粮, 2kg,`,`0.00000,`0.60%,"
            "`0.29,`0.00,`")
    text = "\ufeff" + header + "\r\n" + line + "\r\n总交易单数,应结订单总金额\r\n`1,`0.29\r\n"
    [row] = parse_trade_bill(text)
    assert row["amount"] == 29 and row["description"] == "猫粮, 2kg" and row["out_trade_no"] == "A1"
    with pytest.raises(WeChatPayError, match="fields"):
        parse_trade_bill(header + "\n`2025-01-01,`wx1\n")
    with pytest.raises(WeChatPayError, match="columns"):
        parse_trade_bill("交易时间,商户订单号\n`x,`y\n")
    assert parse_trade_bill("") == []


# -- logs -------------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_keys_and_openids_stay_out_of_the_logs(resources, wechatpay, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(resources)
    _, prepay_id = await prepay(client)
    client.request_payment_params(prepay_id)
    text = caplog.text
    assert OPENID not in text and APIV3_KEY not in text
    assert "PRIVATE KEY" not in text and "signature=" not in text


# -- settings ---------------------------------------------------------------------------------

def test_settings_defaults_and_production_checks():
    settings = Settings(public_base_url="https://api.pawhome.cn", wechat_appid="wx123")
    assert settings.wechatpay_appid == "wx123"
    assert settings.wechatpay_notify_url == "https://api.pawhome.cn/v1/payments/wechat/notify"
    assert settings.wechatpay_refund_notify_url == \
        "https://api.pawhome.cn/v1/payments/wechat/refund-notify"
    assert "PAYMENT_PROVIDER" in " ".join(
        Settings(payment_provider="simulated").wechatpay_problems())
    complete = Settings(payment_provider="wechat", public_base_url="https://api.pawhome.cn",
                        wechatpay_mchid=MCHID, wechatpay_private_key=MERCHANT_KEY_PEM,
                        wechatpay_cert_serial=MERCHANT_SERIAL, wechatpay_apiv3_key=APIV3_KEY)
    assert complete.wechatpay_problems() == []
    for field, value, named in [("wechatpay_private_key", "", "WECHATPAY_PRIVATE_KEY"),
                                ("wechatpay_apiv3_key", "short", "WECHATPAY_APIV3_KEY"),
                                ("wechatpay_cert_serial", "", "WECHATPAY_CERT_SERIAL"),
                                ("wechatpay_public_key_id", PUBLIC_KEY_ID, "PUBLIC_KEY"),
                                ("wechatpay_notify_url", "http://x/n", "NOTIFY_URL")]:
        problems = complete.model_copy(update={field: value}).wechatpay_problems()
        assert any(named in problem for problem in problems), field


def test_keys_load_from_pem_text_or_a_file(tmp_path):
    path = tmp_path / "apiclient_key.pem"
    path.write_text(MERCHANT_KEY_PEM)
    assert crypto.load_private_key(str(path)).key_size == 2048
    assert crypto.load_private_key(MERCHANT_KEY_PEM).key_size == 2048
    assert crypto.load_public_key(PLATFORM.certificate_pem).key_size == 2048
    with pytest.raises(crypto.KeyLoadError) as caught:
        crypto.load_private_key(str(tmp_path / "missing.pem"))
    assert "BEGIN" not in str(caught.value)


# -- the simulated provider -------------------------------------------------------------------

@pytest.fixture
def simulated(tmp_path, io_loop):
    res = Resources(Settings(payment_provider="simulated",
                             wechatpay_sim_dir=str(tmp_path / "wechatpay-sim")))
    yield res
    io_loop.run_sync(res.close)


@pytest.mark.gen_test
async def test_simulated_provider_end_to_end(simulated):
    client = client_for(simulated)
    assert client is client_for(simulated) and client.simulator is not None
    out_trade_no, prepay_id = await prepay(client, amount=6600)
    assert client.request_payment_params(prepay_id)["paySign"]
    assert (await client.query_by_out_trade_no(out_trade_no))["trade_state"] == "NOTPAY"

    headers, body = await client.simulator.build_payment_notification(out_trade_no)
    note = client.parse_notification(headers, body)
    assert note.event_type == "TRANSACTION.SUCCESS"
    assert note.resource["trade_state"] == "SUCCESS"
    assert note.resource["amount"]["total"] == 6600
    assert note.resource["mchid"] == client.mchid and note.resource["appid"] == client.appid
    paid = await client.query_by_out_trade_no(out_trade_no)
    assert paid["transaction_id"] == note.resource["transaction_id"]

    refund_no = new_no("R")
    refund = await client.refund(out_refund_no=refund_no, out_trade_no=out_trade_no,
                                 amount=600, total=6600)
    assert refund["status"] == "PROCESSING"
    headers, body = await client.simulator.build_refund_notification(refund_no)
    note = client.parse_notification(headers, body)
    assert note.event_type == "REFUND.SUCCESS" and note.resource["amount"]["refund"] == 600
    assert (await client.query_refund(refund_no))["status"] == "SUCCESS"

    today = datetime.now(CHINA).date()
    rows = await client.trade_bill(today)
    assert {(r["trade_state"], r["amount"], r["refund_amount"]) for r in rows} == {
        ("SUCCESS", 6600, 0), ("REFUND", 6600, 600)}

    unpaid, _ = await prepay(client)
    await client.close(unpaid)
    with pytest.raises(WeChatPayError) as caught:
        await client.close(out_trade_no)
    assert caught.value.code == "ORDERPAID"


@pytest.mark.gen_test
async def test_simulated_notifies_are_accepted_by_the_sdk(simulated):
    client = client_for(simulated)
    out_trade_no, _ = await prepay(client)
    headers, body = await client.simulator.build_payment_notification(out_trade_no)
    keys = client.simulator.keys
    oracle = WeChatPay(wechatpay_type=WeChatPayType.MINIPROG, mchid=client.mchid,
                       private_key=keys.merchant_pem, cert_serial_no=keys.merchant_serial,
                       appid=client.appid, apiv3_key=keys.apiv3_key,
                       public_key=keys.platform_public_pem, public_key_id=keys.public_key_id)
    assert oracle.callback(headers, body)["resource"]["trade_state"] == "SUCCESS"


@pytest.mark.gen_test
async def test_simulated_provider_serves_its_certificate_and_keeps_its_keys(simulated,
                                                                           tmp_path):
    client = client_for(simulated)
    await client.refresh_certificates()
    assert len(client.platform_serials()) == 1
    again = Resources(Settings(payment_provider="simulated",
                               wechatpay_sim_dir=str(tmp_path / "wechatpay-sim")))
    try:
        # Another process (here: other resources) finds the same keys and the same state.
        other = client_for(again)
        assert other.simulator.keys.public_key_id == client.simulator.keys.public_key_id
        out_trade_no, _ = await prepay(client)
        assert (await other.query_by_out_trade_no(out_trade_no))["trade_state"] == "NOTPAY"
    finally:
        await again.close()


@pytest.mark.gen_test
async def test_simulated_provider_refuses_what_wechat_refuses(simulated):
    client = client_for(simulated)
    forged = WeChatPayClient(client.settings.model_copy(
        update={"wechatpay_private_key": private_pem(new_rsa_key())}), client.http)
    with pytest.raises(WeChatPayError) as caught:
        await prepay(forged)
    assert caught.value.code == "SIGN_ERROR"
    with pytest.raises(LookupError):
        await client.simulator.build_payment_notification("NEVER-PREPAID")
    out_trade_no, _ = await prepay(client)
    with pytest.raises(WeChatPayError) as caught:
        await client.refund(out_refund_no=new_no("R"), out_trade_no=out_trade_no, amount=1,
                            total=1234)
    assert caught.value.code == "RESOURCE_NOT_EXISTS"


# -- a notify over HTTP, as the notify endpoint will receive it ---------------------------------

@pytest.mark.gen_test
async def test_a_notify_posted_by_the_fake_passes_through_a_tornado_handler(resources,
                                                                          wechatpay):
    """The shape the notify endpoint takes: read the raw body and headers, verify, answer
    204 — or a non-2xx FAIL so WeChat retries."""
    import tornado.httpserver
    import tornado.web

    from tests.services import free_port

    client = client_for(resources)
    received = []

    class Notify(tornado.web.RequestHandler):
        async def post(self) -> None:
            try:
                note = await client.receive_notification(self.request.headers, self.request.body)
            except NotifyRejected as rejected:
                self.set_status(401)
                self.finish({"code": "FAIL", "message": rejected.reason})
                return
            received.append(note)
            self.set_status(204)
            self.finish()

    port = free_port()
    server = tornado.httpserver.HTTPServer(tornado.web.Application([("/notify", Notify)]))
    server.listen(port, "127.0.0.1")
    try:
        out_trade_no, _ = await prepay(make_client(resources))
        wechatpay.pay(out_trade_no)
        url = f"http://127.0.0.1:{port}/notify"
        reply = await wechatpay.deliver(url, *wechatpay.payment_notification(out_trade_no))
        assert reply.status_code == 204
        assert received[0].resource["out_trade_no"] == out_trade_no
        assert out_trade_no in repr(received[0]) and OPENID not in repr(received[0])
        forged = await wechatpay.deliver(url, *wechatpay.payment_notification(
            out_trade_no, variant="bad_signature"))
        assert forged.status_code == 401 and forged.json() == {"code": "FAIL",
                                                               "message": "bad_signature"}
        assert len(received) == 1
    finally:
        server.stop()


@pytest.mark.gen_test
async def test_long_texts_are_cut_to_wechat_byte_limits(resources, wechatpay):
    await prepay(client_for(resources), description="猫" * 100)  # 300 bytes
    sent = wechatpay.requests_to("/v3/pay/transactions/jsapi")[-1].body["description"]
    assert sent == "猫" * 42 and len(sent.encode()) <= 127


@pytest.mark.gen_test
async def test_a_failed_certificate_download_is_not_retried_at_once(resources, wechatpay):
    client = client_for(resources)
    wechatpay.fail_next("/v3/certificates", 503, {"code": "SYSTEM_ERROR", "message": "x"})
    with pytest.raises(WeChatPayError) as caught:
        await prepay(client)
    assert caught.value.transient
    with pytest.raises(WeChatPayError) as caught:
        await client.refresh_certificates(unknown_serial=True)
    assert caught.value.code == "NO_CERTIFICATE"
    assert len(wechatpay.requests_to("/v3/certificates")) == 1


@pytest.mark.gen_test
async def test_an_expired_simulated_transaction_cannot_be_paid(simulated):
    client = client_for(simulated)
    out_trade_no = new_no()
    await client.jsapi_prepay(out_trade_no=out_trade_no, description="x", amount=1,
                              payer_openid=OPENID,
                              time_expire=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(ValueError, match="expired"):
        await client.simulator.build_payment_notification(out_trade_no)

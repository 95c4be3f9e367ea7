"""The baselines for bench_mall.py: bare Tornado handlers doing only the mall's storage work,
with nothing of the gateway around them (no envelope code, request ids, rate limits,
idempotency records, metrics, access log, ORM, outbox relay).

    GET  /bare/products/cached/<case>  one Redis MGET of the two keys the gateway reads for
                                       that list page (the list generation and the page), the
                                       generation checked, the same bytes out in the same
                                       envelope;
    GET  /bare/products/db/<case>      the SQL statements the gateway runs for that page on a
                                       cache miss, replayed with the same parameters on the
                                       same engine (pawhome.platform.db.make_engine), rows
                                       encoded with the same codec;
    POST /bare/orders                  a buy-now order of one SKU, the token checked as
                                       bare_server.py does, then in ONE transaction the reads
                                       the checkout plan makes (SKU, product, merchant,
                                       address, pick-up points), INSERT orders, order_events,
                                       order_items, the conditional UPDATE of skus.stock,
                                       SELECT stock, INSERT stock_movements and the outbox
                                       task; then the order read back, like the gateway;
    POST /bare/notify                  a WeChat Pay TRANSACTION.SUCCESS notify: serial,
                                       RSA-SHA256 signature and timestamp checked and the
                                       resource decrypted (AEAD_AES_256_GCM) with
                                       `cryptography` directly, then in ONE transaction the
                                       statements the gateway runs (payment locked, notify id
                                       looked up, payment paid, order locked and paid, its
                                       timeline row, the three order.status outbox rows, items
                                       read, sales counted, both parties' notification rows with
                                       their settings rows locked and their outbox rows, the
                                       notify recorded).

Keys, statements and the platform certificate come from bench_mall.py (BENCH_BARE_SPEC: a
pickle of {"lists": {case: {"gen_key", "page_key", "sql"}}, "platform_certificate",
"mchid", "appid"}). Outbox rows written here are never relayed (no relay runs in this
process); bench_mall.py deletes them after the bare cases.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import pickle
import secrets
import sys
import time
import uuid
from pathlib import Path

import tornado.httpserver
import tornado.web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bare_server import Healthz, authenticated_user_id  # noqa: E402

from pawhome.platform import codec  # noqa: E402
from pawhome.platform.cache import make_redis  # noqa: E402
from pawhome.platform.db import make_engine  # noqa: E402
from settings import get_settings  # noqa: E402

ENVELOPE = b'{"code":0,"message":"ok","data":'
SUCCESS = b'{"code":"SUCCESS","message":"\xe6\x88\x90\xe5\x8a\x9f"}'

# -- order statements (the columns the ORM writes; reads of whole rows, as the ORM's) ----------
SKU = "SELECT * FROM skus WHERE skus.id IN (%s)"
PRODUCT = "SELECT * FROM products WHERE products.id IN (%s)"
MERCHANT = "SELECT * FROM merchants WHERE merchants.user_id IN (%s)"
ADDRESS = "SELECT * FROM addresses WHERE addresses.id = %s"
PICKUP_POINTS = ("SELECT * FROM pickup_points WHERE pickup_points.merchant_id = %s AND "
                 "pickup_points.enabled IS true ORDER BY pickup_points.id")
INSERT_ORDER = (
    "INSERT INTO orders (order_no, user_id, merchant_id, checkout_key, status, fulfilment, "
    "address, pickup_point, delivery_window, goods_amount, delivery_fee, discount_amount, "
    "payable_amount, paid_amount, refunded_amount, price_breakdown, remark, carrier, "
    "tracking_no, pickup_code, status_before_refund, pay_deadline, auto_complete_at, paid_at, "
    "shipped_at, completed_at, cancelled_at, cancel_reason, created_at, updated_at) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, %s, %s, %s, %s, %s)")
INSERT_ORDER_EVENT = (
    "INSERT INTO order_events (order_id, from_status, to_status, action, actor_type, actor_id, "
    "reason, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")
INSERT_ORDER_ITEM = (
    "INSERT INTO order_items (order_id, product_id, sku_id, name, image_url, spec_text, "
    "unit_price, quantity, line_total, discount_share, refunded_quantity, refunded_amount) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
TAKE_STOCK = ("UPDATE skus SET stock=(skus.stock - %s), updated_at=%s WHERE skus.id = %s AND "
              "skus.deleted_at IS NULL AND skus.stock >= %s")
STOCK_OF = "SELECT skus.stock FROM skus WHERE skus.id = %s"
INSERT_MOVEMENT = (
    "INSERT INTO stock_movements (sku_id, delta, stock_after, reason, ref_type, ref_id, "
    "actor_id, note, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
INSERT_OUTBOX = ("INSERT INTO outbox (kind, name, payload, created_at, available_at, attempts, "
                 "last_error) VALUES (%s, %s, %s, %s, %s, %s, %s)")
ORDER_BACK = "SELECT * FROM orders WHERE orders.id IN (%s) ORDER BY orders.id"

# -- notify statements ----------------------------------------------------------------------
PAYMENT_LOCK = "SELECT * FROM payments WHERE payments.out_trade_no = %s FOR UPDATE"
NOTIFY_SEEN = ("SELECT * FROM payment_notifications WHERE "
               "payment_notifications.notification_id = %s")
PAYMENT_PAID = ("UPDATE payments SET status=%s, trade_state=%s, transaction_id=%s, "
                "paid_amount=%s, paid_at=%s, updated_at=%s WHERE payments.id = %s")
ORDER_LOCK = "SELECT * FROM orders WHERE orders.id = %s FOR UPDATE"
ORDER_PAID = ("UPDATE orders SET status=%s, paid_amount=%s, paid_at=%s, updated_at=%s "
              "WHERE orders.id = %s")
INSERT_OUTBOX_3 = ("INSERT INTO outbox (kind, name, payload, created_at, available_at, "
                   "attempts, last_error) VALUES (%s, %s, %s, %s, %s, %s, %s), "
                   "(%s, %s, %s, %s, %s, %s, %s), (%s, %s, %s, %s, %s, %s, %s)")
ITEMS = "SELECT * FROM order_items WHERE order_items.order_id = %s ORDER BY order_items.id"
PRODUCT_SALES = ("UPDATE products SET sales_count=(products.sales_count + %s), updated_at=%s "
                 "WHERE products.id = %s")
SKU_SALES = ("UPDATE skus SET sales_count=(skus.sales_count + %s), updated_at=%s "
             "WHERE skus.id = %s")
SETTINGS_LOCK = "SELECT * FROM user_settings WHERE user_settings.user_id = %s FOR UPDATE"
INSERT_NOTIFICATION = (
    "INSERT INTO notifications (user_id, category, kind, group_key, actor_ids, actor_count, "
    "target_type, target_id, payload, read_at, created_at, updated_at) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
RECORD_NOTIFY = (
    "INSERT IGNORE INTO payment_notifications (notification_id, event_type, out_trade_no, "
    "out_refund_no, transaction_id, state, amount, outcome, detail, received_at) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")

MAX_SKEW = 300
UNPAID_TIMEOUT = dt.timedelta(seconds=1800)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def text(value: object) -> str:
    return codec.dumps(value).decode()


async def replay(engine, statements: list[tuple[str, tuple]]) -> list[list[tuple]]:
    """Run the captured statements on one pooled connection; every row of every result."""
    async with engine.connect() as conn:
        return [[tuple(row) for row in (await conn.exec_driver_sql(sql, params)).all()]
                for sql, params in statements]


class ListCached(tornado.web.RequestHandler):
    async def get(self, case: str) -> None:
        s = self.application.settings
        keys = s["spec"]["lists"][case]
        generation, raw = await s["redis"].mget(keys["gen_key"], keys["page_key"])
        head = (generation or b"0") + b"|"
        if raw is None or not raw.startswith(head):
            raise tornado.web.HTTPError(500, "the page is not cached")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(ENVELOPE + raw[len(head):] + b"}")


class ListDb(tornado.web.RequestHandler):
    async def get(self, case: str) -> None:
        s = self.application.settings
        results = await replay(s["engine"], s["spec"]["lists"][case]["sql"])
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"code": 0, "message": "ok", "data": results}))


class Shortage(Exception):
    pass


class Orders(tornado.web.RequestHandler):
    def check_xsrf_cookie(self) -> None:
        pass

    async def post(self) -> None:
        s = self.application.settings
        user_id = await authenticated_user_id(self)
        body = codec.loads(self.request.body)
        item = body["items"][0]
        sku_id, quantity, address_id = int(item["sku_id"]), int(item["quantity"]), \
            int(body["address_id"])
        try:
            order_id = await self.place(s["engine"], user_id, sku_id, quantity, address_id,
                                        self.request.headers.get("Idempotency-Key", "")[:64])
        except Shortage as shortage:
            self.set_status(409)
            self.finish(codec.dumps({"code": 40901, "message": "out of stock",
                                     "errors": [{"field": "items[0].quantity",
                                                 "message": str(shortage)}]}))
            return
        async with s["engine"].connect() as conn:
            row = (await conn.exec_driver_sql(ORDER_BACK, (order_id,))).mappings().one()
        self.set_status(201)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"code": 0, "message": "ok", "data": {
            "orders": [{"id": row["id"], "order_no": row["order_no"],
                        "merchant_id": row["merchant_id"], "status": row["status"],
                        "payable_amount": row["payable_amount"],
                        "pay_deadline": row["pay_deadline"]}],
            "payable_amount": row["payable_amount"]}}))

    @staticmethod
    async def place(engine, user_id: int, sku_id: int, quantity: int, address_id: int,
                    key: str) -> int:
        async with engine.begin() as conn:
            sku = (await conn.exec_driver_sql(SKU, (sku_id,))).mappings().one()
            product = (await conn.exec_driver_sql(PRODUCT, (sku["product_id"],))).mappings().one()
            merchant = (await conn.exec_driver_sql(MERCHANT, (product["merchant_id"],))
                        ).mappings().one()
            address = (await conn.exec_driver_sql(ADDRESS, (address_id,))).mappings().one()
            (await conn.exec_driver_sql(PICKUP_POINTS, (merchant["user_id"],))).all()
            if address["user_id"] != user_id or product["status"] != "on_sale" \
                    or sku["deleted_at"] is not None or merchant["status"] != "active":
                raise tornado.web.HTTPError(422)
            goods = sku["price"] * quantity
            free_over = merchant["express_free_over"]
            fee = 0 if free_over is not None and goods >= free_over \
                else merchant["express_base_fee"]
            now = utcnow()
            snapshot = {"address_id": address["id"], "contact_name": address["contact_name"],
                        "phone": address["phone"], "province": address["province"],
                        "city": address["city"], "district": address["district"],
                        "community": address["community"], "detail": address["detail"],
                        "full_address": address["province"] + address["city"]
                        + address["district"] + address["detail"]}
            breakdown = [{"kind": "goods", "code": "goods", "label": "商品金额", "amount": goods},
                         {"kind": "delivery", "code": "delivery", "label": "运费",
                          "amount": fee}]
            order_no = f"{now:%y%m%d}{secrets.randbelow(10**12):012d}"
            result = await conn.exec_driver_sql(INSERT_ORDER, (
                order_no, user_id, merchant["user_id"], key, "pending_payment", "express",
                text(snapshot), "null", "", goods, fee, 0, goods + fee, 0, 0, text(breakdown),
                "", "", "", "", "", now + UNPAID_TIMEOUT, None, None, None, None, None, "",
                now, now))
            order_id = result.lastrowid
            await conn.exec_driver_sql(INSERT_ORDER_EVENT, (
                order_id, "", "pending_payment", "place", "buyer", user_id, "", now))
            await conn.exec_driver_sql(INSERT_ORDER_ITEM, (
                order_id, product["id"], sku_id, product["name"], "", sku["spec_text"],
                sku["price"], quantity, goods, 0, 0, 0))
            taken = await conn.exec_driver_sql(TAKE_STOCK, (quantity, utcnow(), sku_id,
                                                            quantity))
            if taken.rowcount != 1:
                left = (await conn.exec_driver_sql(STOCK_OF, (sku_id,))).scalar_one()
                raise Shortage(f"out of stock: {left} left")  # rolls the transaction back
            after = (await conn.exec_driver_sql(STOCK_OF, (sku_id,))).scalar_one()
            await conn.exec_driver_sql(INSERT_MOVEMENT, (
                sku_id, -quantity, after, "order_placed", "order", order_id, user_id, "",
                utcnow()))
            await conn.exec_driver_sql(INSERT_OUTBOX, (
                "task", "default.cancel_unpaid_order", text({"args": [order_id], "kwargs": {}}),
                utcnow(), now + UNPAID_TIMEOUT + dt.timedelta(seconds=1), 0, ""))
        return int(order_id)


class Notify(tornado.web.RequestHandler):
    def check_xsrf_cookie(self) -> None:
        pass

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(codec.dumps({"code": "FAIL", "message": message}))

    async def post(self) -> None:
        s = self.application.settings
        headers, body = self.request.headers, self.request.body
        serial = headers.get("Wechatpay-Serial", "")
        stamp = headers.get("Wechatpay-Timestamp", "")
        nonce = headers.get("Wechatpay-Nonce", "")
        signature = headers.get("Wechatpay-Signature", "")
        if serial != s["serial"]:
            return self.fail(401, "unknown Wechatpay-Serial")
        try:
            s["platform_key"].verify(base64.b64decode(signature),
                                     f"{stamp}\n{nonce}\n".encode() + body + b"\n",
                                     padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return self.fail(401, "signature verification failed")
        if abs(time.time() - int(stamp)) > MAX_SKEW:
            return self.fail(401, "stale timestamp")
        notice = codec.loads(body)
        resource = notice["resource"]
        transaction = codec.loads(s["aead"].decrypt(
            resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
            (resource.get("associated_data") or "").encode()))
        if transaction.get("mchid") != s["spec"]["mchid"] \
                or transaction.get("appid") != s["spec"]["appid"]:
            return self.fail(409, "not ours")
        await self.apply(s["engine"], notice, transaction)
        self.set_header("Content-Type", "application/json")
        self.finish(SUCCESS)

    async def apply(self, engine, notice: dict, transaction: dict) -> None:
        notification_id = str(notice["id"])
        out_trade_no = str(transaction["out_trade_no"])
        transaction_id = str(transaction["transaction_id"])
        total = int(transaction["amount"]["total"])
        async with engine.begin() as conn:
            payment = (await conn.exec_driver_sql(PAYMENT_LOCK, (out_trade_no,))
                       ).mappings().one()
            if (await conn.exec_driver_sql(NOTIFY_SEEN, (notification_id,))).first():
                return
            if total != payment["amount"] or payment["transaction_id"]:
                raise tornado.web.HTTPError(409)
            now = utcnow()
            paid_at = dt.datetime.fromisoformat(transaction["success_time"]).astimezone(
                dt.UTC).replace(tzinfo=None)
            await conn.exec_driver_sql(PAYMENT_PAID, (
                "paid", "SUCCESS", transaction_id, payment["amount"], paid_at, now,
                payment["id"]))
            order = (await conn.exec_driver_sql(ORDER_LOCK, (payment["payable_id"],))
                     ).mappings().one()
            if order["status"] == "pending_payment" and total == order["payable_amount"]:
                await self.order_paid(conn, order, total)
            await conn.exec_driver_sql(RECORD_NOTIFY, (
                notification_id[:64], str(notice["event_type"])[:32], out_trade_no, "",
                transaction_id, "SUCCESS", total, "applied", "", utcnow()))

    @staticmethod
    async def order_paid(conn, order, total: int) -> None:
        now = utcnow()
        await conn.exec_driver_sql(ORDER_PAID, ("paid", total, now, now, order["id"]))
        await conn.exec_driver_sql(INSERT_ORDER_EVENT, (
            order["id"], "pending_payment", "paid", "pay", "system", None, "", now))
        stamp = int(time.time() * 1000)
        rows: list = []
        for name, role in ((f"ws:user:{order['user_id']}", "buyer"),
                           (f"ws:user:{order['merchant_id']}", "merchant"),
                           (f"ws:topic:order:{order['id']}", "watcher")):
            event = {"id": uuid.uuid4().hex, "type": "order.status", "data": {
                "order_id": order["id"], "order_no": order["order_no"], "status": "paid",
                "previous": "pending_payment", "action": "pay", "role": role, "reason": "",
                "at": now.isoformat() + "Z"}, "ts": stamp}
            if role == "watcher":
                event["topic"] = f"order:{order['id']}"
            rows += ["event", name, text(event), utcnow(), utcnow(), 0, ""]
        await conn.exec_driver_sql(INSERT_OUTBOX_3, tuple(rows))
        items = (await conn.exec_driver_sql(ITEMS, (order["id"],))).mappings().all()
        for product_id in sorted({i["product_id"] for i in items}):
            await conn.exec_driver_sql(PRODUCT_SALES, (
                sum(i["quantity"] for i in items if i["product_id"] == product_id), utcnow(),
                product_id))
        for sku_id in sorted({i["sku_id"] for i in items}):
            await conn.exec_driver_sql(SKU_SALES, (
                sum(i["quantity"] for i in items if i["sku_id"] == sku_id), utcnow(), sku_id))
        yuan = f"{order['payable_amount'] / 100:.2f}"
        told = {order["merchant_id"]: {"title": "新订单",
                                       "text": f"订单 {order['order_no']} 已付款 ¥{yuan}"},
                order["user_id"]: {"title": "支付成功",
                                   "text": f"订单 {order['order_no']} 支付成功 ¥{yuan}"}}
        for user_id in sorted(told):
            await conn.exec_driver_sql(SETTINGS_LOCK, (user_id,))
            payload = {**told[user_id], "order_no": order["order_no"]}
            created = utcnow()
            result = await conn.exec_driver_sql(INSERT_NOTIFICATION, (
                user_id, "order", "order_paid", None, "[]", 0, "order", order["id"],
                text(payload), None, created, created))
            event = {"id": uuid.uuid4().hex, "type": "notify.new", "data": {
                "id": result.lastrowid, "category": "order", "kind": "order_paid",
                "actors": [], "actor_count": 0, "target_type": "order",
                "target_id": order["id"], "payload": payload, "read": False,
                "created_at": created.isoformat(), "updated_at": created.isoformat(),
                "text": payload["text"], "alert": True}, "ts": int(time.time() * 1000)}
            await conn.exec_driver_sql(INSERT_OUTBOX, (
                "event", f"ws:user:{user_id}", text(event), utcnow(), utcnow(), 0, ""))
            await conn.exec_driver_sql(INSERT_OUTBOX, (
                "task", "notify.send_subscribe_message", text({
                    "args": [user_id, "notification:order"], "kwargs": {
                        "conversation_id": None, "notification_id": result.lastrowid,
                        "push_id": uuid.uuid4().hex}}),
                utcnow(), utcnow() + dt.timedelta(seconds=60), 0, ""))


async def serve(port: int) -> None:
    settings = get_settings()
    spec = pickle.loads(Path(os.environ["BENCH_BARE_SPEC"]).read_bytes())
    certificate = x509.load_pem_x509_certificate(spec["platform_certificate"].encode())
    app = tornado.web.Application(
        [(r"/healthz", Healthz), (r"/bare/products/cached/(\w+)", ListCached),
         (r"/bare/products/db/(\w+)", ListDb), (r"/bare/orders", Orders),
         (r"/bare/notify", Notify)],
        secret=settings.jwt_secret, prefix=settings.redis_prefix, redis=make_redis(settings),
        engine=make_engine(settings), spec=spec,
        serial=format(certificate.serial_number, "X"), platform_key=certificate.public_key(),
        aead=AESGCM(settings.wechatpay_apiv3_key.encode()),
        log_function=lambda handler: None)
    server = tornado.httpserver.HTTPServer(app, xheaders=True)
    server.listen(port, address="127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))

"""The API fuzz run's world: a gateway process of its own, the data it is seeded with, and
who is logged in for which operation (tests/test_fuzz.py, docs/api.md "The fuzz gate").

The gateway is `run_gateway.py` in development mode on a database, Redis prefix and task
setting of its own (tasks run in-process, so posts pass moderation and media get processed
without a worker), with every rate limit times RATE_LIMIT_SCALE: thousands of requests from
one address and two users would otherwise meet 429 instead of the endpoints. It is seeded
through the API itself with users, posts, comments, likes, follows, pets, a conversation,
notifications and uploads, and the ids it got back are fed to the fuzzer as dictionaries,
so that most generated requests reach a real row instead of stopping at 404.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
RATE_LIMIT_SCALE = 50


class FuzzGateway:
    """run_gateway.py as a subprocess; `stop()` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, database_url: str, redis_prefix: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_file = tempfile.TemporaryFile()
        self.media_root = tempfile.mkdtemp(prefix="pawhome-fuzz-media-")
        env = {**os.environ, "MODE": "development", "DATABASE_URL": database_url,
               "REDIS_PREFIX": redis_prefix, "BROKER_URL": "",  # tasks in-process
               "OUTBOX_POLL_SECONDS": "0.2", "RATE_LIMIT_SCALE": str(RATE_LIMIT_SCALE),
               "MEDIA_ROOT": self.media_root,
               "PUBLIC_BASE_URL": self.base_url,
               "LOG_LEVEL": "WARNING", "WS_GC_THRESHOLDS": ""}
        self.proc = subprocess.Popen([sys.executable, "run_gateway.py", "--port", str(self.port)],
                                     cwd=ROOT, env=env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.base_url, timeout=30)
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"fuzz gateway exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"fuzz gateway not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read().decode("utf-8", "replace")[-8000:]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.media_root, ignore_errors=True)


# -- seeding through the API ---------------------------------------------------------------------
@dataclass
class Login:
    user_id: int
    token: str
    refresh_token: str
    openid: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Seed:
    """Who is logged in, and the ids of the rows the fuzzer should aim at."""
    user: Login  # the fuzzing user: every user operation runs as them
    admin: Login  # admin operations run as them
    other: Login  # the fuzzing user's counterpart (a follower, a correspondent)
    victim: Login  # the target of admin user operations (bans, roles)
    merchant: Login | None = None  # /v1/merchant/... operations run as them
    ids: dict[str, list[Any]] = field(default_factory=dict)  # parameter name -> values
    admin_ids: dict[str, list[Any]] = field(default_factory=dict)  # same, for /v1/admin/...
    doomed_ids: dict[str, list[Any]] = field(default_factory=dict)  # same, for DELETE


class Seeder:
    def __init__(self, gateway: FuzzGateway) -> None:
        self.client = gateway.client

    def call(self, method: str, path: str, who: Login | None = None, json: Any = None,
             expect: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        headers = {**(who.headers if who else {}), **kwargs.pop("headers", {})}
        reply = self.client.request(method, path, json=json, headers=headers, **kwargs)
        assert reply.status_code in expect, \
            f"seeding {method} {path}: {reply.status_code} {reply.text[:500]}"
        return reply.json()["data"] if reply.headers.get("content-type", "").startswith(
            "application/json") else reply.text

    def login(self, name: str, role: str = "user") -> Login:
        openid = f"fuzz-{name}-{uuid.uuid4().hex[:12]}"
        data = self.call("POST", "/v1/auth/dev-login", json={"openid": openid, "role": role})
        return Login(data["user_id"], data["access_token"], data["refresh_token"], openid)

    def wait_visible(self, path: str, who: Login, timeout: float = 20.0) -> None:
        """Posts and comments are moderated by a task (in-process here): wait for the verdict."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.client.get(path, headers=who.headers)
            if reply.status_code == 200 and reply.json()["data"].get("status") == "visible":
                return
            time.sleep(0.1)
        raise AssertionError(f"{path} not visible after {timeout}s")

    def post(self, who: Login, text: str, **fields: Any) -> int:
        post = self.call("POST", "/v1/posts", who, json={"text": text, **fields})
        self.wait_visible(f"/v1/posts/{post['id']}", who)
        return post["id"]

    def comment(self, who: Login, post_id: int, text: str, reply_to: int | None = None) -> int:
        body: dict[str, Any] = {"text": text}
        if reply_to is not None:
            body["reply_to_comment_id"] = reply_to
        return self.call("POST", f"/v1/posts/{post_id}/comments", who, json=body)["id"]

    def image_upload(self, who: Login) -> tuple[int, str]:
        """A finished image upload (processed in-process) and a started one's upload token."""
        data = _tiny_jpeg()
        started = self.call("POST", "/v1/media", who, json={
            "kind": "image", "size": len(data), "content_type": "image/jpeg"})
        self.client.put(started["upload_url"], content=data,
                        headers=started.get("headers") or {}).raise_for_status()
        self.call("POST", f"/v1/media/{started['media_id']}/complete", who)
        pending = self.call("POST", "/v1/media", who, json={
            "kind": "image", "size": len(data), "content_type": "image/jpeg"})
        return started["media_id"], pending["upload_url"].rsplit("/", 1)[1]


    # -- the catalogue (docs/mall.md) --
    def ready_image(self, who: Login, timeout: float = 20.0) -> int:
        """A processed image of `who`'s (the media task runs in-process)."""
        media_id, _ = self.image_upload(who)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("GET", f"/v1/media/{media_id}", who)["status"] == "ready":
                return media_id
            time.sleep(0.05)
        raise AssertionError(f"media {media_id} not ready after {timeout}s")

    def product(self, merchant: Login, admin: Login, category_id: int, name: str,
                on_sale: bool = True, timeout: float = 20.0) -> tuple[int, list[int]]:
        """A product with two SKUs, put on sale (moderation runs in-process; what it holds
        the admin approves): (product id, SKU ids)."""
        product = self.call("POST", "/v1/merchant/products", merchant, json={
            "name": name, "subtitle": "猫狗通用", "media_ids": [self.ready_image(merchant)],
            "category_id": category_id, "pet_types": ["cat", "dog"], "tags": ["零食"]})
        skus = self.call("PUT", f"/v1/merchant/products/{product['id']}/skus", merchant, json={
            "spec_attrs": [{"name": "规格", "values": ["100g", "500g"]}],
            "skus": [{"spec_values": ["100g"], "price": 1990, "stock": 500},
                     {"spec_values": ["500g"], "price": 6990, "original_price": 7990,
                      "stock": 500}]})["skus"]
        if on_sale:
            path = f"/v1/merchant/products/{product['id']}"
            self.call("POST", path + "/on-sale", merchant)
            deadline = time.monotonic() + timeout
            while self.call("GET", path, merchant)["status"] == "reviewing":
                if time.monotonic() > deadline:
                    self.call("POST", f"/v1/admin/products/{product['id']}/approve", admin)
                    break
                time.sleep(0.05)
            assert self.call("GET", path, merchant)["status"] == "on_sale"
        return product["id"], [s["id"] for s in skus]


def publish(gateway: FuzzGateway, world: Seed, post_id: int, settle: float = 5.0) -> None:
    """The fuzzing user's new post as readers find it: moderation (a task) has passed it or,
    when it held it for review, the admin approved it. A post since deleted stays so."""
    def status() -> str | None:
        reply = gateway.client.get(f"/v1/posts/{post_id}", headers=world.user.headers)
        return reply.json()["data"]["status"] if reply.status_code == 200 else None

    deadline = time.monotonic() + settle
    current = status()
    while current == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
        current = status()
    if current in ("pending", "hidden"):
        reply = gateway.client.post(f"/v1/admin/moderation/post/{post_id}/approve",
                                    headers=world.admin.headers)
        assert reply.status_code == 200, reply.text


def free_pet_quota(gateway: FuzzGateway, world: Seed) -> None:
    """Delete the fuzzing user's pet cards other than the seeded ones: the earlier phases
    may have used up most of the 50 a user may have, and creating them is what the pets'
    stateful sequences start with."""
    seeded = set(world.ids["pet_id"])
    for pet in gateway.client.get("/v1/pets", headers=world.user.headers).json()["data"][
            "items"]:
        if pet["id"] not in seeded:
            gateway.client.delete(f"/v1/pets/{pet['id']}", headers=world.user.headers)


# -- the mall: shops and delivery, addresses, the cart ------------------------------------------
ADDRESS = {"contact_name": "张三", "phone": "13800138000", "province": "浙江省", "city": "杭州市",
           "district": "西湖区", "community": "翠苑一区", "detail": "3幢2单元501"}
PICKUP_POINT = {"name": "文三路店", "province": "浙江省", "city": "杭州市", "district": "西湖区",
                "detail": "文三路100号", "hours": "09:00-21:00"}


def seed_mall(s: Seeder, user: Login, merchant: Login, sku_ids: list[int]) -> dict[str, Any]:
    """The merchant's delivery set-up (areas, pick-up points), the fuzzing user's addresses
    and cart lines (of SKUs on sale): {"ids", "doomed"}."""
    s.call("PUT", "/v1/merchant/delivery", merchant, json={
        "express": {"enabled": True, "base_fee": 800, "free_over": 9900,
                    "regions": [{"province": "西藏自治区", "deliverable": False}]},
        "local": {"enabled": True, "fee": 500, "windows": ["09:00-12:00", "14:00-18:00"]},
        "pickup": {"enabled": True}})
    areas = [s.call("POST", "/v1/merchant/delivery-areas", merchant, json={
        "name": f"区域{n}", "province": "浙江省", "city": "杭州市", "district": "西湖区",
        "communities": ["翠苑一区"] if n else []})["id"] for n in range(3)]
    points = [s.call("POST", "/v1/merchant/pickup-points", merchant,
                     json={**PICKUP_POINT, "name": f"门店{n}"})["id"] for n in range(3)]
    addresses = [s.call("POST", "/v1/addresses", user, json={**ADDRESS, "detail": f"{n}号"})["id"]
                 for n in range(4)]
    for sku_id in sku_ids:
        s.call("POST", "/v1/cart/items", user, json={"sku_id": sku_id, "quantity": 2})
    return {"ids": {"merchant_id": [merchant.user_id], "area_id": areas[:1],
                    "point_id": points[:1], "address_id": addresses[:2]},
            "doomed": {"area_id": areas[1:], "point_id": points[1:],
                       "address_id": addresses[2:]}}


def free_address_quota(gateway: FuzzGateway, world: Seed) -> None:
    """Delete the fuzzing user's addresses other than the seeded ones (at most 20 each)."""
    seeded = set(world.ids["address_id"]) | set(world.doomed_ids["address_id"])
    for address in gateway.client.get("/v1/addresses", headers=world.user.headers).json()[
            "data"]["items"]:
        if address["id"] not in seeded:
            gateway.client.delete(f"/v1/addresses/{address['id']}", headers=world.user.headers)


def free_shop_quota(gateway: FuzzGateway, world: Seed) -> None:
    """Delete the merchant's delivery areas and pick-up points other than the seeded ones."""
    assert world.merchant is not None
    headers = world.merchant.headers
    for kind, name in (("delivery-areas", "area_id"), ("pickup-points", "point_id")):
        seeded = set(world.ids[name]) | set(world.doomed_ids[name])
        for row in gateway.client.get(f"/v1/merchant/{kind}", headers=headers).json()[
                "data"]["items"]:
            if row["id"] not in seeded:
                gateway.client.delete(f"/v1/merchant/{kind}/{row['id']}", headers=headers)


def _tiny_jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


def seed(gateway: FuzzGateway) -> Seed:
    s = Seeder(gateway)
    user, other, victim = s.login("user"), s.login("other"), s.login("victim")
    admin = s.login("admin", role="admin")
    s.call("PUT", "/v1/users/me", user, json={"nickname": "fuzzer", "bio": "柯基和猫"})
    pets = [s.call("POST", "/v1/pets", user, json={"name": name, "species": species})["id"]
            for name, species in (("豆豆", "dog"), ("咪咪", "cat"), ("Spare", "rabbit"))]
    media_id, upload_token = s.image_upload(user)
    mine = [s.post(user, f"今天带{n}号柯基去公园 #遛狗# 第{n}篇", topics=["遛狗"],
                   pet_types=["dog"]) for n in (1, 2, 3)]
    theirs = [s.post(other, "橘猫晒太阳 #晒猫#", topics=["晒猫"]),
              s.post(other, "求推荐猫粮", board=None)]
    victims_posts = [s.post(victim, "被管理员处理的帖子")]
    doomed_posts = [s.post(user, f"要删除的帖子 {n}") for n in (1, 2)]
    doomed_pets = [s.call("POST", "/v1/pets", user,
                          json={"name": "Gone", "species": "other"})["id"]]
    comments = [s.comment(user, theirs[0], "好可爱"), s.comment(other, mine[0], "哪个公园?")]
    comments.append(s.comment(user, mine[0], "朝阳公园", reply_to=comments[1]))
    victims_comments = [s.comment(victim, theirs[1], "管理员会删掉这条")]
    doomed_comments = [s.comment(user, theirs[1], f"要删除的评论 {n}") for n in (1, 2)]
    # Notifications for the fuzzing user: a follow, a like, the comment above.
    s.call("POST", f"/v1/users/{user.user_id}/follow", other)
    s.call("POST", f"/v1/posts/{mine[0]}/like", other)
    s.call("POST", f"/v1/users/{other.user_id}/follow", user)
    conversation = s.call("POST", "/v1/conversations", user, json={"to_user_id": other.user_id})
    cid = conversation["id"]
    seqs = [s.call("POST", f"/v1/conversations/{cid}/messages", who, json={
        "client_msg_id": f"seed-{n}", "kind": "text", "text": text})["seq"]
        for n, (who, text) in enumerate(((user, "在吗"), (other, "在的"), (user, "周末遛狗?")))]
    notifications = [n["id"] for n in s.call("GET", "/v1/notifications", user)["items"]]
    chunked = s.call("POST", "/v1/media/uploads", user, json={
        "kind": "video", "size": 3 << 20, "content_type": "video/mp4",
        "sha256": uuid.uuid4().hex * 2, "part_size": 1 << 20})
    refresh = s.login("refresh")  # a refresh token the fuzzer may rotate
    # -- the catalogue: a shop, categories, products on sale, a favorite --
    merchant = s.login("merchant", role="merchant")
    shelf = s.call("POST", "/v1/admin/categories", admin, json={"name": "零食"})
    treats = s.call("POST", "/v1/admin/categories", admin,
                    json={"name": "冻干", "parent_id": shelf["id"]})
    spare_category = s.call("POST", "/v1/admin/categories", admin, json={"name": "待整理"})
    product_ids, sku_ids = zip(*[s.product(merchant, admin, treats["id"], name)
                                 for name in ("冻干鸡肉粒", "三文鱼猫条")], strict=True)
    admins_product, _ = s.product(merchant, admin, treats["id"], "抽检商品")
    doomed_product, _ = s.product(merchant, admin, treats["id"], "要删除的商品", on_sale=False)
    s.call("POST", f"/v1/favorites/products/{product_ids[0]}", user)
    s.call("GET", f"/v1/products/{product_ids[1]}", user)  # a footprint
    mall = seed_mall(s, user, merchant, [i for ids in sku_ids for i in ids])
    return Seed(
        user=user, admin=admin, other=other, victim=victim, merchant=merchant,
        ids={
            "user_id": [other.user_id, victim.user_id, user.user_id],
            "post_id": mine + theirs,
            "comment_id": comments,
            "pet_id": pets,
            "media_id": [media_id, chunked["media_id"]],
            "conversation_id": [cid],
            "seq": seqs,
            "notification_id": notifications,
            "name": ["遛狗", "晒猫"],
            "token": [upload_token],
            "part_number": [1, 2, 3],
            "refresh_token": [refresh.refresh_token],
            "to_user_id": [other.user_id],
            "reply_to_comment_id": comments,
            "target_id": theirs + comments[1:2],  # reports: others' posts, their comment
            "content_type": ["image/jpeg", "image/png", "video/mp4"],
            "size": [len(_tiny_jpeg()), 3 << 20],
            "product_id": list(product_ids),
            "sku_id": [i for ids in sku_ids for i in ids],
            **mall["ids"],
        },
        doomed_ids={"post_id": doomed_posts, "comment_id": doomed_comments, "pet_id": doomed_pets,
                    "product_id": [doomed_product], **mall["doomed"]},
        admin_ids={
            "user_id": [victim.user_id],
            "post_id": victims_posts,
            "target_id": victims_posts + victims_comments,
            "target_type": ["post", "comment"],
            "product_id": [admins_product],
            "category_id": [spare_category["id"], shelf["id"]],
        },
    )

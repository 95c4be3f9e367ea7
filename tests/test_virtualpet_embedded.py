"""The virtual pet's generation as a new user meets it in `make run` (embedded mode: SQLite,
the in-process store, tasks run in the gateway): upload the demo cat photo, watch the
generation's progress live on a socket, adopt the pet, whose colours follow the photo; and
the demo data's adopted pet."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
from sqlalchemy import select
from tornado.websocket import websocket_connect

from models.virtual_pets import VirtualPet
from pawhome.platform import codec
from pawhome.virtualpet.demo_virtualpet import DEMO_PET_NAME, DEMO_PHOTO
from tests.media_helpers import path_of
from tests.test_embedded import ROOT, dev_login, embedded  # noqa: F401
from tests.test_growth_embedded import Caller
from tests.test_mall_catalogue_embedded import _until as until


def _upload(user: Caller, data: bytes) -> int:
    started = user("POST", "/v1/media", 201, json={"kind": "image", "size": len(data),
                                                   "content_type": "image/jpeg"})
    put = httpx.put(user.gateway.base + path_of(started["upload_url"]), content=data,
                    headers=started["headers"], timeout=15)
    assert put.status_code in (200, 201, 204), put.text
    user("POST", f"/v1/media/{started['media_id']}/complete")
    return int(started["media_id"])


def test_a_new_user_generates_and_adopts_a_pet_from_a_cat_photo_in_make_run(embedded):
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=180)
    user = Caller(embedded, "vpet-newcomer")

    async def watch() -> tuple[dict, list[dict]]:
        sock = await websocket_connect(f"ws://127.0.0.1:{embedded.port}/v1/ws?token="
                                       + user.token)
        frames: list[dict] = []
        try:
            media_id = await asyncio.to_thread(_upload, user, DEMO_PHOTO.read_bytes())
            while not any(f["type"] == "media.ready" for f in frames):
                frames.append(codec.loads(await asyncio.wait_for(sock.read_message(), 60)))
            queued = await asyncio.to_thread(
                user, "POST", "/v1/virtual-pets/generations", 202,
                json={"media_id": media_id, "hints": {"species": "cat"}})
            while not any(f["type"] in ("generation.done", "generation.failed")
                          for f in frames):
                frames.append(codec.loads(await asyncio.wait_for(sock.read_message(), 60)))
            return queued, frames
        finally:
            sock.close()

    queued, frames = asyncio.run(watch())
    stages = [f["data"]["stage"] for f in frames if f["type"] == "generation.progress"]
    assert stages == ["downloading", "detecting", "measuring", "parameters", "rendering",
                      "storing"], frames
    done = next(f["data"] for f in frames if f["type"] == "generation.done")
    assert done["generation_id"] == queued["id"]
    sprite = httpx.get(embedded.base + path_of(done["sprite_url"]), timeout=10)
    assert sprite.status_code == 200 and sprite.content[8:12] == b"WEBP"

    pet = user("POST", "/v1/virtual-pets", 201,
               json={"generation_id": queued["id"], "name": "小橘"})
    red, green, blue = (int(pet["params"]["colours"][0][i:i + 2], 16) for i in (1, 3, 5))
    assert red > green > blue  # a brown tabby's fur
    assert pet["name"] == "小橘" and pet["sprite_url"] == done["sprite_url"]

    owner = dev_login(embedded, "demo-user-2")["user_id"]

    async def demo_pets(session):
        return (await session.execute(select(VirtualPet).where(
            VirtualPet.owner_id == owner))).scalars().all()
    mine = embedded.run_in_its_database(demo_pets)
    assert [p.name for p in mine] == [DEMO_PET_NAME]
    assert mine[0].params["colours"] == pet["params"]["colours"]  # the same photo


def test_issue_13_done_when_a_player_raises_a_pet_from_their_photo_in_make_run(embedded):
    """Issue 13's "done when", on the demo data: the demo buyer (who checked in yesterday)
    uploads a cat photo, watches the generation live, adopts the pet, checks in a second day
    in a row, buys food in the points mall, feeds the pet with it and sees their rank."""
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=180)
    player = Caller(embedded, "demo-user-1")

    async def generate() -> dict:
        sock = await websocket_connect(f"ws://127.0.0.1:{embedded.port}/v1/ws?token="
                                       + player.token)
        try:
            media_id = await asyncio.to_thread(_upload, player, DEMO_PHOTO.read_bytes())
            frame: dict = {}
            while frame.get("type") != "media.ready":
                frame = codec.loads(await asyncio.wait_for(sock.read_message(), 60))
            queued = await asyncio.to_thread(player, "POST", "/v1/virtual-pets/generations",
                                             202, json={"media_id": media_id})
            seen = []
            while frame.get("type") not in ("generation.done", "generation.failed"):
                frame = codec.loads(await asyncio.wait_for(sock.read_message(), 60))
                seen.append(frame["type"])
            assert frame["type"] == "generation.done", frame
            assert seen.count("generation.progress") == 6
            return {**frame["data"], "id": queued["id"]}
        finally:
            sock.close()

    done = asyncio.run(generate())
    pet = player("POST", "/v1/virtual-pets", 201,
                 json={"generation_id": done["id"], "name": "小虎"})
    red, green, blue = (int(pet["params"]["colours"][0][i:i + 2], 16) for i in (1, 3, 5))
    assert red > green > blue  # the photo's brown tabby fur

    checked = player("POST", "/v1/checkin")
    assert checked["streak"] == 2  # yesterday (the demo data) and today

    balance = player("GET", "/v1/points")["balance"]
    goods = player("GET", "/v1/products", params={"points": "true", "limit": 50})["items"]
    sku = next(s for c in goods if c["kind"] == "virtual_pet_food"
               for s in player("GET", f"/v1/products/{c['id']}")["skus"]
               if 0 < s["points_price"] <= balance)
    player("POST", "/v1/orders", 201, json={"items": [{"sku_id": sku["id"], "quantity": 1}],
                                            "redeem_sku_ids": [sku["id"]]})
    assert player("GET", "/v1/points")["balance"] == balance - sku["points_price"]
    held = {i["sku_id"]: i["quantity"] for i in player("GET", "/v1/inventory")["items"]}
    fed = player("POST", f"/v1/virtual-pets/{pet['id']}/interactions",
                 json={"type": "feeding", "item_id": sku["id"]})
    after = {i["sku_id"]: i["quantity"] for i in player("GET", "/v1/inventory")["items"]}
    assert after.get(sku["id"], 0) == held[sku["id"]] - 1  # the food was eaten
    assert fed["pet"]["exp"] > pet["exp"]

    board = until(lambda: (lambda b: b if b["my_rank"] and b["me"]["score"] == fed["pet"]["exp"]
                           else None)(player("GET", "/v1/leaderboards/pet_level")),
                  "the fed pet's experience on the pet board")
    assert board["me"]["pet"]["name"] == "小虎" and board["me"]["rank"] == board["my_rank"]
    assert any(e["user"]["id"] == board["me"]["user"]["id"] for e in board["around"])

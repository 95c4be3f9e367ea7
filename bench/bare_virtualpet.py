"""The baselines for bench_virtualpet.py: bare Tornado handlers doing only the virtual pet's
storage work, with nothing of the gateway around them (no envelope code, request ids, rate
limits, idempotency records, metrics, access log, ORM, outbox relay, view building).

    GET  /bare/products/cached/pet        bare_mall.py's cached-read handler: one Redis MGET
                                          of the two keys the gateway reads for the pet's
                                          detail (its generation and its stored row), the
                                          generation checked, the bytes out in the envelope;
    POST /bare/pets/<id>/interactions     the token checked as bare_server.py does, then in ONE
                                          transaction: the pet row locked, the food's
                                          inventory row locked and used with its movement row
                                          (feeding), the interaction row, the pet's UPDATE; the
                                          cached row dropped (INCR, EXPIRE, DEL in a pipeline)
                                          after the commit; a small JSON reply.

Keys come from bench_virtualpet.py (BENCH_BARE_SPEC: a pickle of {"lists": {"pet": {"gen_key",
"page_key"}}, "pet_key": "<prefix>vpet:pet:{}", "food": {user id: SKU id}}).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import pickle
import sys
from pathlib import Path

import tornado.httpserver
import tornado.web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bare_mall import ListCached, text, utcnow  # noqa: E402
from bare_server import Healthz, authenticated_user_id  # noqa: E402

from pawhome.platform import codec  # noqa: E402
from pawhome.platform.cache import make_redis  # noqa: E402
from pawhome.platform.db import make_engine  # noqa: E402
from settings import get_settings  # noqa: E402

PET_LOCK = "SELECT * FROM virtual_pets WHERE virtual_pets.id = %s FOR UPDATE"
ITEM_LOCK = ("SELECT * FROM inventory_items WHERE inventory_items.user_id = %s AND "
             "inventory_items.sku_id = %s FOR UPDATE")
INSERT_MOVEMENT = (
    "INSERT INTO inventory_movements (user_id, sku_id, delta, quantity_after, reason, ref_type, "
    "ref_id, idem_key, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
USE_ITEM = ("UPDATE inventory_items SET quantity=%s, updated_at=%s WHERE "
            "inventory_items.user_id = %s AND inventory_items.sku_id = %s")
INSERT_INTERACTION = (
    "INSERT INTO pet_interactions (pet_id, user_id, type, item_sku_id, changes, exp_gained, "
    "level_after, skill_unlocked, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
UPDATE_PET = (
    "UPDATE virtual_pets SET mood=%s, fullness=%s, cleanliness=%s, affection=%s, status_at=%s, "
    "exp=%s, exp_reached_at=%s, cooldowns=%s, last_interaction_at=%s, hungry_remind_at=%s, "
    "updated_at=%s WHERE virtual_pets.id = %s")
GAINS = {"feeding": {"fullness": 30_000, "affection": 2_000, "mood": 2_000},
         "petting": {"mood": 10_000, "affection": 3_000},
         "cleaning": {"cleanliness": 40_000, "mood": 3_000},
         "training": {"affection": 1_000, "mood": -2_000, "fullness": -3_000}}
EXP = {"feeding": 5, "petting": 2, "cleaning": 3, "training": 15}
STATUSES = ("mood", "fullness", "cleanliness", "affection")


class Interactions(tornado.web.RequestHandler):
    def check_xsrf_cookie(self) -> None:
        pass

    async def post(self, pet_id: str) -> None:
        s = self.application.settings
        user_id = await authenticated_user_id(self)
        kind = codec.loads(self.request.body)["type"]
        async with s["engine"].begin() as conn:
            pet = (await conn.exec_driver_sql(PET_LOCK, (int(pet_id),))).mappings().one()
            if pet["owner_id"] != user_id or pet["deleted_at"] is not None:
                raise tornado.web.HTTPError(404)
            now = utcnow()
            after = {k: max(0, min(100_000, pet[k] + GAINS[kind].get(k, 0))) for k in STATUSES}
            sku_id = s["spec"]["food"][user_id] if kind == "feeding" else None
            result = await conn.exec_driver_sql(INSERT_INTERACTION, (
                pet["id"], user_id, kind, sku_id,
                text({k: [pet[k], after[k]] for k in STATUSES if pet[k] != after[k]}),
                EXP[kind], pet["level"], "", now))
            if sku_id is not None:
                item = (await conn.exec_driver_sql(ITEM_LOCK, (user_id, sku_id))).mappings().one()
                await conn.exec_driver_sql(INSERT_MOVEMENT, (
                    user_id, sku_id, -1, item["quantity"] - 1, "virtual_pet", "virtual_pet",
                    str(pet["id"]), f"bare:{result.lastrowid}", now))
                await conn.exec_driver_sql(USE_ITEM, (item["quantity"] - 1, now, user_id, sku_id))
            cooldowns = {**codec.loads(pet["cooldowns"] or "{}"), kind: now.isoformat()}
            await conn.exec_driver_sql(UPDATE_PET, (
                *(after[k] for k in STATUSES), now, pet["exp"] + EXP[kind], now, text(cooldowns),
                now, now + dt.timedelta(hours=10), now, pet["id"]))
        detail_key = s["spec"]["pet_key"].format(pet_id)
        async with s["redis"].pipeline(transaction=False) as pipe:
            pipe.incr(detail_key + ":gen")
            pipe.expire(detail_key + ":gen", 4200)
            pipe.delete(detail_key)
            await pipe.execute()
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"code": 0, "message": "ok", "data": {
            "pet": {"id": pet["id"], "statuses": after, "exp": pet["exp"] + EXP[kind]},
            "interaction": {"id": result.lastrowid, "type": kind}}}))


async def serve(port: int) -> None:
    settings = get_settings()
    spec = pickle.loads(Path(os.environ["BENCH_BARE_SPEC"]).read_bytes())
    app = tornado.web.Application(
        [(r"/healthz", Healthz), (r"/bare/products/cached/(\w+)", ListCached),
         (r"/bare/pets/(\d+)/interactions", Interactions)],
        secret=settings.jwt_secret, prefix=settings.redis_prefix, redis=make_redis(settings),
        engine=make_engine(settings), spec=spec, log_function=lambda handler: None)
    server = tornado.httpserver.HTTPServer(app, xheaders=True)
    server.listen(port, address="127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))

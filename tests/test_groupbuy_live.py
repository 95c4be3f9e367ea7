"""Group-buy live: the members and a viewer of a group's page watch `group:<id>` on real
WebSockets and get `group.progress` as seats are taken, paid and the group fills; the
members get their notification live (and a subscribe message is scheduled with it)."""
from __future__ import annotations

import pytest

from tests.groupbuy_support import (
    buyer_with_address,
    group_order,
    group_shop,
    join_group,
    open_group,
    pay,
)
from tests.mall_support import make_member
from tests.test_chat_socket import ChatSocket


def progress(group_id: int, action: str):
    return lambda f: (f["type"] == "group.progress" and f.get("topic") == f"group:{group_id}"
                      and f["data"]["action"] == action)


@pytest.mark.gen_test(timeout=120)
async def test_members_and_viewers_watch_a_group_fill_live(api, base_url, resources,
                                                           wechatpay):
    _, _, sku, _ = await group_shop(api, resources, size=3, stock=20)
    opener, _, group_id = await open_group(api, resources, wechatpay, sku)
    second, _ = await join_group(api, resources, wechatpay, sku, group_id)
    viewer = await make_member(resources)
    sockets = [await ChatSocket.connect(base_url, person.token)
               for person in (opener, second, viewer)]
    try:
        for sock in sockets:
            await sock.send({"type": "sub", "topic": f"group:{group_id}"})
            await sock.expect(lambda f: f["type"] == "sub.ok")
        third, address = await buyer_with_address(resources)
        order = (await group_order(api, third, sku, address, group_id)).ok(201)["orders"][0]
        for sock in sockets:
            joined = await sock.expect(progress(group_id, "member_joined"))
            assert (joined["data"]["seats_left"], joined["data"]["paid_count"]) == (0, 2)
        await pay(api, wechatpay, third, order)
        for sock in sockets:
            filled = await sock.expect(progress(group_id, "fill"))
            assert filled["data"]["status"] == "filled"
            assert (filled["data"]["paid_count"], filled["data"]["size"]) == (3, 3)
        for sock in sockets[:2]:  # the members are told, the viewer is not
            told = await sock.expect(lambda f: f["type"] == "notify.new"
                                     and f["data"]["kind"] == "group_buy_filled")
            assert told["data"]["payload"]["group_id"] == group_id
        # Nobody watches a group that does not exist.
        await sockets[2].send({"type": "sub", "topic": "group:999999999999"})
        refused = await sockets[2].expect(lambda f: f["type"] == "error")
        assert str(refused["code"]).startswith("404"), refused
    finally:
        for sock in sockets:
            sock.close()

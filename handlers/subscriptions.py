"""The caller's WeChat subscribe-message authorisations: report what wx.requestSubscribeMessage
answered, read what is left per template (pawhome/messaging/subscribe_messages.py)."""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.messaging import subscribe_messages


class MySubscriptionsHandler(ApiHandler):
    @endpoint(tags=("users",), summary="Subscribe-message authorisations left per template")
    async def get(self) -> None:
        self.ok({"items": await subscribe_messages.remaining_by_template(self.r, self.user_id)})

    @endpoint(body=subscribe_messages.SubscriptionResults, tags=("users",),
              refuses={"results": "template ids of this mini-program's subscribe templates "
                                  "(SUBSCRIBE_TEMPLATES), each accept, reject, ban or filter; "
                                  "an errMsg entry is ignored"},
              summary="Report a wx.requestSubscribeMessage result; each accept adds one")
    async def post(self) -> None:
        items = await subscribe_messages.record_results(self.r, self.user_id, self.body.results)
        self.ok({"items": items})

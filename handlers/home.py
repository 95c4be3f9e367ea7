"""The mall home: what a viewer sees (GET /v1/home/mall), the pop-up acknowledgement, and
the admins' home content (banners, pop-ups, product slots).

Thin: each calls one function of pawhome/promotions/home.py; docs/promotions.md
"Home slots".
"""
from __future__ import annotations

from typing import Literal

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.errors import NotFound, ValidationFailed
from pawhome.promotions import home

TAGS = ("home",)
ADMIN = ("admin",)
ADMIN_TAGS = ("admin",)
LINK_RULE = {"link_value": "fits link_type: a product (that exists) or category id, a page "
                           "path starting with /, an https URL, empty for none",
             "starts_at": "between the years 2000 and 2100",
             "ends_at": "after starts_at, between the years 2000 and 2100"}
Kind = Literal["banner", "popup"]


class MallHomeHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, tags=TAGS,
              read_ahead=lambda h: home.home_reads(h.r, h.viewer_id),
              summary="The mall home for this viewer: live banners, the pop-ups to show "
                      "(display rules applied), product slots and products for you")
    async def get(self) -> None:
        self.ok(await home.mall_home(self.r, self.viewer_id, self.read_ahead))


class PopupSeenHandler(ApiHandler):
    @endpoint(tags=TAGS, summary="The client showed a pop-up: the home stops offering it "
                                 "(for a daily pop-up: until tomorrow, Asia/Shanghai)")
    async def post(self, popup_id: int) -> None:
        self.ok(await home.popup_seen(self.r, self.user_id, popup_id))


class _ContentListHandler(ApiHandler):
    kind: Kind = "banner"

    async def _list(self) -> None:
        self.ok(await home.list_content(self.r, self.kind))

    async def _create(self) -> None:
        self.ok(await home.save_content(self.r, self.user_id, self.kind, self.body), status=201)


class _ContentHandler(ApiHandler):
    kind: Kind = "banner"

    async def _replace(self, content_id: int) -> None:
        self.ok(await home.save_content(self.r, self.user_id, self.kind, self.body, content_id))

    async def _delete(self, content_id: int) -> None:
        self.ok(await home.delete_content(self.r, self.user_id, self.kind, content_id))


class AdminBannersHandler(_ContentListHandler):
    kind: Kind = "banner"

    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, summary="Every home banner, in display order")
    async def get(self) -> None:
        await self._list()

    @endpoint(roles=ADMIN, body=home.BannerBody, tags=ADMIN_TAGS, status=201,
              errors=(ValidationFailed,), refuses=LINK_RULE, links={"banner_id": "/id"},
              summary="Add a home banner (image, link, sort, date range); audited")
    async def post(self) -> None:
        await self._create()


class AdminBannerHandler(_ContentHandler):
    kind: Kind = "banner"

    @endpoint(roles=ADMIN, body=home.BannerBody, tags=ADMIN_TAGS, errors=(ValidationFailed,),
              refuses=LINK_RULE, summary="Replace a home banner; audited")
    async def put(self, banner_id: int) -> None:
        await self._replace(banner_id)

    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, summary="Delete a home banner; audited")
    async def delete(self, banner_id: int) -> None:
        await self._delete(banner_id)


class AdminPopupsHandler(_ContentListHandler):
    kind: Kind = "popup"

    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, summary="Every home pop-up, in display order")
    async def get(self) -> None:
        await self._list()

    @endpoint(roles=ADMIN, body=home.PopupBody, tags=ADMIN_TAGS, status=201,
              errors=(ValidationFailed,), refuses=LINK_RULE, links={"popup_id": "/id"},
              summary="Add a home pop-up with its display rule (once, daily, new users) and "
                      "date range; audited")
    async def post(self) -> None:
        await self._create()


class AdminPopupHandler(_ContentHandler):
    kind: Kind = "popup"

    @endpoint(roles=ADMIN, body=home.PopupBody, tags=ADMIN_TAGS, errors=(ValidationFailed,),
              refuses=LINK_RULE, summary="Replace a home pop-up; audited")
    async def put(self, popup_id: int) -> None:
        await self._replace(popup_id)

    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, summary="Delete a home pop-up; audited")
    async def delete(self, popup_id: int) -> None:
        await self._delete(popup_id)


class AdminSlotHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, errors=(NotFound,),
              summary="A home product slot: the picked products and what the home shows")
    async def get(self, slot: str) -> None:
        self.ok(await home.get_slot(self.r, home.slot_named(slot)))

    @endpoint(roles=ADMIN, body=home.SlotBody, tags=ADMIN_TAGS,
              errors=(NotFound, ValidationFailed),
              refuses={"product_ids": "products that exist and are on sale, each once"},
              summary="Replace a slot's picked products, in order (hot: none picked shows "
                      "the best sellers); audited")
    async def put(self, slot: str) -> None:
        self.ok(await home.put_slot(self.r, self.user_id, home.slot_named(slot), self.body))

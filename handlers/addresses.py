"""Address endpoints: the caller's delivery addresses under /v1/addresses.

Thin: each calls one function of pawhome/mall/addresses.py; docs/mall.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.mall import addresses
from pawhome.platform.errors import ValidationFailed

TAGS = ("addresses",)


class AddressesHandler(ApiHandler):
    @endpoint(tags=TAGS, response=addresses.AddressList,
              summary="The caller's addresses, the default first")
    async def get(self) -> None:
        self.ok(await addresses.list_addresses(self.r, self.user_id))

    @endpoint(body=addresses.AddressCreate, tags=TAGS, status=201,
              response=addresses.AddressView, links={"address_id": "/id"},
              errors=(ValidationFailed,), refuses={"body": addresses.ADDRESS_LIMIT_RULE},
              summary="Add an address (a first address becomes the default)")
    async def post(self) -> None:
        self.ok(await addresses.create_address(self.r, self.user_id, self.body), status=201)


class AddressHandler(ApiHandler):
    @endpoint(tags=TAGS, response=addresses.AddressView,
              summary="One of the caller's addresses (others' are 404)")
    async def get(self, address_id: int) -> None:
        self.ok(await addresses.get_own_address(self.r, self.user_id, address_id))

    @endpoint(body=addresses.AddressFields, tags=TAGS, response=addresses.AddressView,
              summary="Change an address (only the fields sent)")
    async def patch(self, address_id: int) -> None:
        self.ok(await addresses.update_address(self.r, self.user_id, address_id, self.body))

    @endpoint(tags=TAGS, response=addresses.AddressDeleted,
              summary="Delete an address (deleting the default makes the newest remaining "
                      "one the default)")
    async def delete(self, address_id: int) -> None:
        self.ok(await addresses.delete_address(self.r, self.user_id, address_id))


class AddressDefaultHandler(ApiHandler):
    @endpoint(tags=TAGS, response=addresses.AddressView,
              summary="Make an address the caller's default")
    async def post(self, address_id: int) -> None:
        self.ok(await addresses.make_default(self.r, self.user_id, address_id))

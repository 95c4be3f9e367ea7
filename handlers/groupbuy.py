"""Group-buy endpoints: a product's group-buy offer and open groups, a group's page (the
shared link's target), the caller's groups, and the shops' rules (merchants their own SKUs',
admins any). Opening and joining a group is a checkout (POST /v1/orders with `group_buy`).

Thin: each calls one function of pawhome/promotions/groupbuy.py; docs/promotions.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.errors import GroupBuyRuleExists, GroupBuyTermsInvalid, NotFound
from pawhome.promotions import groupbuy

TAGS = ("group-buy",)
SELLER_TAGS = ("merchant", "group-buy")
SELLERS = ("merchant", "admin")


class ProductGroupsHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=groupbuy.ProductGroupsQuery, tags=TAGS,
              summary="A product's group-buy rules (per SKU) and the open groups to join")
    async def get(self) -> None:
        self.ok(await groupbuy.groups_of_product(self.r, self.viewer_id, self.query))


class GroupHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, tags=TAGS,
              summary="A group's page: terms, seats left, time left, paid members; watch "
                      "`group:<id>` for group.progress")
    async def get(self, group_id: int) -> None:
        self.ok(await groupbuy.get_group(self.r, self.viewer_id, group_id))


class MyGroupsHandler(ApiHandler):
    @endpoint(query=groupbuy.RuleListQuery, tags=TAGS,
              summary="The caller's group memberships, newest first")
    async def get(self) -> None:
        self.ok(await groupbuy.my_groups(self.r, self.user_id, self.query))


class RulesHandler(ApiHandler):
    @endpoint(roles=SELLERS, query=groupbuy.RuleListQuery, tags=SELLER_TAGS,
              summary="The caller's group-buy rules (admins: every one)")
    async def get(self) -> None:
        self.ok(await groupbuy.list_rules(self.r, self.user_id, self.caller.role, self.query))

    @endpoint(roles=SELLERS, body=groupbuy.RuleBody, tags=SELLER_TAGS, status=201,
              errors=(GroupBuyTermsInvalid, GroupBuyRuleExists, NotFound),
              refuses=groupbuy.RULE_REFUSALS, links={"rule_id": "/id"},
              summary="Sell a SKU by group-buy: group size, group price, time to fill, "
                      "limit per buyer (one rule per SKU)")
    async def post(self) -> None:
        self.ok(await groupbuy.create_rule(self.r, self.user_id, self.caller.role, self.body),
                status=201)


class RuleHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=groupbuy.RulePatch, tags=SELLER_TAGS,
              errors=(GroupBuyTermsInvalid,),
              refuses={"group_price": groupbuy.RULE_REFUSALS["group_price"]},
              summary="Change a group-buy rule or stop it (opened groups keep their terms)")
    async def patch(self, rule_id: int) -> None:
        self.ok(await groupbuy.update_rule(self.r, self.user_id, self.caller.role, rule_id,
                                           self.body))

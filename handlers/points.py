"""Points endpoints: the caller's balance and ledger, their inventory of virtual items; the
admin's points rules, adjustments of a user's points, and the reconciliation reports.

Thin: each calls one function of pawhome/points/ (ledger, rules, reconciliation,
inventory); docs/points.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.errors import NotFound, PointsKeyReused, ValidationFailed, field_error
from pawhome.platform.pagination import CURSOR_RULE, PageQuery
from pawhome.points import inventory, ledger, reconciliation, rules

TAGS = ("points",)
ADMIN_TAGS = ("admin",)
ADMIN = ("admin",)


class PointsHandler(ApiHandler):
    @endpoint(tags=TAGS, summary="The caller's points balance, what expires soon, and the "
                                 "points payment rule")
    async def get(self) -> None:
        self.ok(await ledger.get_points(self.r, self.user_id))


class PointsLedgerHandler(ApiHandler):
    @endpoint(query=ledger.LedgerQuery, tags=TAGS, refuses=CURSOR_RULE,
              summary="The caller's points ledger, newest first (cursor; earned or spent)")
    async def get(self) -> None:
        self.ok(await ledger.list_ledger(self.r, self.user_id, self.query))


class InventoryHandler(ApiHandler):
    @endpoint(query=inventory.InventoryQuery, tags=TAGS,
              summary="The caller's virtual items (bought in the points mall)")
    async def get(self) -> None:
        self.ok(await inventory.list_inventory(self.r, self.user_id, self.query))


# -- admin ----------------------------------------------------------------------------------------


class AdminPointsRulesHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, summary="The points rules in force")
    async def get(self) -> None:
        self.ok(await rules.get_rules(self.r))

    @endpoint(roles=ADMIN, body=rules.Rules, tags=ADMIN_TAGS,
              refuses={"streak_bonuses": "each streak length (days) at most once"},
              summary="Replace the points rules (earning, caps, payment rule, expiry; audited)")
    async def put(self) -> None:
        self.ok(await rules.put_rules(self.r, self.body, admin_id=self.user_id))


class AdminUserPointsHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=ledger.LedgerQuery, tags=ADMIN_TAGS, refuses=CURSOR_RULE,
              summary="A user's points balance and ledger (newest first, cursor)")
    async def get(self, user_id: int) -> None:
        self.ok(await ledger.admin_view(self.r, user_id, self.query))

    @endpoint(roles=ADMIN, body=ledger.AdjustBody, tags=ADMIN_TAGS, idempotent=True,
              errors=(ValidationFailed, NotFound, PointsKeyReused),
              summary="Add or take a user's points with a reason (audited)",
              refuses={"delta": "not 0; a deduction at most the user's balance (422)",
                       "Idempotency-Key": "required: the adjustment happens once per key"})
    async def post(self, user_id: int) -> None:
        key = self.request.headers.get("Idempotency-Key", "")
        if not key:
            raise ValidationFailed(errors=[field_error("Idempotency-Key", "required")])
        self.ok(await ledger.admin_adjust(self.r, user_id, self.body, admin_id=self.user_id,
                                          key=key))


class AdminPointsReconciliationsHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=PageQuery, tags=ADMIN_TAGS,
              summary="Points reconciliation runs, newest first, with the accounts that drift")
    async def get(self) -> None:
        self.ok(await reconciliation.list_reports(self.r, self.query))

    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, status=201,
              summary="Run the points reconciliation now (read-only; a report is kept)")
    async def post(self) -> None:
        self.ok(await reconciliation.reconcile(self.r), status=201)


class AdminPointsReconciliationHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, summary="One points reconciliation run")
    async def get(self, report_id: int) -> None:
        self.ok(await reconciliation.get_report(self.r, report_id))

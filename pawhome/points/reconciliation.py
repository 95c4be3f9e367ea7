"""The nightly points reconciliation: every user's balance must equal the sum of their
ledger, and the ledger's last balance_after. A drift means something wrote a balance
around the ledger (a hand edit, a bug): it is never corrected silently. Each run is kept as
a report admins read (GET /v1/admin/points/reconciliations), the drift is logged (user ids
and amounts only) and counted in the `pawhome_points_drift_accounts` gauge. docs/points.md.
"""
from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.points import PointsAccount, PointsEntry, PointsReconciliation
from pawhome.platform.errors import NotFound
from pawhome.platform.metrics import REGISTRY
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.points")

DRIFTS_KEPT = 500  # listed in a report; drift_count counts them all
DRIFT_ACCOUNTS = Gauge("pawhome_points_drift_accounts",
                       "Points accounts whose balance differs from their ledger (last run)",
                       registry=REGISTRY)


async def _drifts_in(session: AsyncSession, after_user: int,
                     limit: int) -> tuple[list[dict[str, Any]], int, int]:
    """Compare one batch of accounts (user id > after_user): (drifts, checked, last id)."""
    accounts = list((await session.execute(
        select(PointsAccount.user_id, PointsAccount.balance)
        .where(PointsAccount.user_id > after_user)
        .order_by(PointsAccount.user_id).limit(limit))).all())
    if not accounts:
        return [], 0, after_user
    ids = [row.user_id for row in accounts]
    sums = dict((await session.execute(
        select(PointsEntry.user_id, func.sum(PointsEntry.delta))
        .where(PointsEntry.user_id.in_(ids)).group_by(PointsEntry.user_id))).all())
    drifts = []
    for user_id, balance in accounts:
        total = int(sums.get(user_id) or 0)
        if total != balance:
            drifts.append({"user_id": user_id, "balance": int(balance), "ledger_sum": total,
                           "drift": int(balance) - total})
    return drifts, len(accounts), ids[-1]


async def reconcile(resources: Resources) -> dict[str, Any]:
    """Check every account against its ledger (batch by batch, read-only, each batch one
    consistent read) and keep the report. Returns the report."""
    started = utcnow()
    drifts: list[dict[str, Any]] = []
    checked, drift_count, after = 0, 0, 0
    batch = resources.settings.points_reconcile_batch
    while True:
        async with resources.db.session() as session:
            found, count, after = await _drifts_in(session, after, batch)
        checked += count
        drift_count += len(found)
        drifts.extend(found[:max(0, DRIFTS_KEPT - len(drifts))])
        if count < batch:
            break
    async with resources.db.session() as session, session.begin():
        report = PointsReconciliation(accounts_checked=checked, drift_count=drift_count,
                                      drifts=drifts, started_at=started, finished_at=utcnow())
        session.add(report)
        await session.flush()
        view = _view(report)
    DRIFT_ACCOUNTS.set(drift_count)
    if drift_count:
        log.error("points reconciliation %s: %s of %s accounts drift from their ledger: %s",
                  view["id"], drift_count, checked,
                  ", ".join(f"user {d['user_id']} {d['drift']:+d}" for d in drifts[:20]))
    else:
        log.info("points reconciliation %s: %s accounts match their ledger", view["id"],
                 checked)
    return view


def _view(report: PointsReconciliation) -> dict[str, Any]:
    return {"id": report.id, "accounts_checked": report.accounts_checked,
            "drift_count": report.drift_count, "drifts": report.drifts,
            "started_at": report.started_at.isoformat() + "Z",
            "finished_at": report.finished_at.isoformat() + "Z" if report.finished_at else None}


async def list_reports(resources: Resources, query: PageQuery) -> dict[str, Any]:
    """Runs newest first (each with its drifts)."""
    async with resources.db.session() as session:
        total = int((await session.execute(
            select(func.count()).select_from(PointsReconciliation))).scalar_one())
        rows = (await session.execute(select(PointsReconciliation)
                                      .order_by(PointsReconciliation.id.desc())
                                      .offset(query.offset).limit(query.limit))).scalars()
        return page_result([_view(r) for r in rows], total, query)


async def get_report(resources: Resources, report_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        report = await session.get(PointsReconciliation, report_id)
        if report is None:
            raise NotFound("No such reconciliation")
        return _view(report)

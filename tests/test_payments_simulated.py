"""The simulated provider (payment_provider "simulated", what `make run` uses): a newcomer pays
through the development confirm endpoint, which feeds the simulated WeChat's signed notify
to the real notify handling; refunds complete by the simulated WeChat's refund notify. The
endpoint is the payer's own and absent outside development."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from pawhome.payments import jobs, notifies
from settings import Settings
from tests import payments_support as support

CONFIRM = "/v1/payments/simulated/{}/confirm"


@pytest.fixture
def settings(tmp_path):
    # A Redis namespace of its own (inside the run's): the simulated WeChat keeps its trades
    # and each day's bill there, and other tests read "today's bill" of theirs.
    base = Settings()
    return Settings(payment_provider="simulated",
                    wechatpay_sim_dir=str(tmp_path / "wechatpay-sim"),
                    redis_prefix=f"{base.redis_prefix}sim{uuid.uuid4().hex[:8]}:")


@pytest.mark.gen_test(timeout=90)
async def test_a_newcomer_pays_and_gets_a_refund_with_the_simulated_provider(api, resources):
    payer = await support.make_payer(resources)
    opened = await support.prepare(resources, payer, amount=6600)
    assert opened["package"].startswith("prepay_id=wx") and opened["paySign"]
    no = opened["out_trade_no"]

    stranger = await support.make_payer(resources)
    (await api.post(CONFIRM.format(no), token=stranger.token)).error(404)
    (await api.post(CONFIRM.format("T-NOBODY-1"), token=payer.token)).error(404)
    confirmed = (await api.post(CONFIRM.format(no), token=payer.token)).ok()
    assert confirmed["notify_status"] == 200
    assert confirmed["notify_reply"] == {"code": "SUCCESS", "message": "成功"}
    assert confirmed["payment"]["status"] == "paid"
    assert confirmed["payment"]["channel"] == "simulated"
    assert await support.paid_calls(opened["payable_id"]) == 1
    again = (await api.post(CONFIRM.format(no), token=payer.token)).ok()  # a double tap
    assert again["notify_status"] == 200 and await support.paid_calls(opened["payable_id"]) == 1

    refund = await support.refund_later(resources, opened["payable_id"], "RSIM" + no[1:12], 600)
    assert await jobs.send_refund(resources, refund.id) == "PROCESSING"
    # What the payments.simulate_refund_notify task does a moment later:
    assert await notifies.simulate_refund_notify(resources, refund.out_refund_no) == "SUCCESS"
    assert (await support.refund_row(resources, refund.out_refund_no)).status == "success"
    row = await support.payment_row(resources, no)
    assert (row.status, row.refunded_amount) == ("paid", 600)


@pytest.mark.gen_test(timeout=60)
async def test_confirming_needs_a_prepay_and_development_settings(api, resources, monkeypatch):
    payer = await support.make_payer(resources)
    admin = await support.make_payer(resources, role="admin")
    opened = await support.prepare(resources, payer)
    # An admin may confirm anyone's (a support session in development).
    assert (await api.post(CONFIRM.format(opened["out_trade_no"]),
                           token=admin.token)).ok()["payment"]["status"] == "paid"
    monkeypatch.setattr(resources.settings, "dev_login_enabled", False)
    (await api.post(CONFIRM.format(opened["out_trade_no"]), token=payer.token)).error(404)


@pytest.mark.gen_test(timeout=120)
async def test_the_payment_flow_runs_on_sqlite_as_in_make_run(tmp_path):
    """Embedded mode's database: SQLite (no row locks; INSERT ... ON CONFLICT; savepoints)."""
    from pawhome.platform import migrate
    from pawhome.platform.resources import Resources

    url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    await asyncio.get_running_loop().run_in_executor(None, migrate.upgrade, url)
    embedded = Resources(Settings(mode="embedded", database_url=url, redis_url="memory://",
                                  payment_provider="simulated",
                                  wechatpay_sim_dir=str(tmp_path / "wechatpay-sim")))
    try:
        payer = await support.make_payer(embedded)
        opened = await support.prepare(embedded, payer, amount=1500)
        again = await support.prepare(embedded, payer, payable_id=opened["payable_id"],
                                      out_trade_no=opened["out_trade_no"], amount=1500)
        assert again["package"] == opened["package"]
        paid = await notifies.confirm_simulated_payment(embedded, payer.user_id, "user",
                                                        opened["out_trade_no"])
        assert paid["payment"]["status"] == "paid"
        assert (await notifies.confirm_simulated_payment(
            embedded, payer.user_id, "user", opened["out_trade_no"]))["notify_status"] == 200
        assert await support.paid_calls(opened["payable_id"]) == 1
        no = "RSQL" + opened["out_trade_no"][1:12]
        refund = await support.refund_later(embedded, opened["payable_id"], no, 500)
        assert (await support.refund_later(embedded, opened["payable_id"], no, 500)).id == \
            refund.id
        assert await jobs.send_refund(embedded, refund.id) == "PROCESSING"
        assert await notifies.simulate_refund_notify(embedded, no) == "SUCCESS"
        row = await support.payment_row(embedded, opened["out_trade_no"])
        assert (row.refunded_amount, row.refund_reserved) == (500, 500)
    finally:
        await embedded.close()

"""The console's operations pages end to end in chromium (same harness as
test_console_browser.py: one browser and one gateway process for the module): the dashboard's
daily statistics and CSV export, mall categories, coupons, group-buy rules, home banners and
pop-ups, points rules, virtual items and reconciliation reports; and a merchant kept out of
the admin-only ones (menu, typed URL and the API with the page's own session).
"""
from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from tests.console_browser_support import paid_order, screenshot, sign_in_page
from tests.console_support import PASSWORD

# The module-scoped browser, gateway and test-data fixtures of the first browser module.
from tests.test_console_browser import (  # noqa: F401
    backend,
    browser,
    browser_context_args,
    browser_type,
    browser_type_launch_args,
    clear_rate_limits,
    console,
    launch_browser,
    playwright,
)

pytestmark = pytest.mark.timeout(180)


def admin_page(page, console, backend, path: str) -> None:
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/{path}")


def admin_token(backend) -> str:
    return backend.login("admin")["access_token"]


# -- the dashboard ---------------------------------------------------------------------------

def test_the_dashboard_charts_the_daily_statistics_and_exports_csv(console, page, backend):
    from pawhome.platform import activity
    from pawhome.stats import daily

    paid_order(backend)  # a paid order today: GMV > 0
    today = activity.shanghai_day()
    backend.run(daily.compute_day, backend.resources, today)
    frm = (today - dt.timedelta(days=6)).isoformat()
    admin_page(page, console, backend, f"dashboard?from={frm}&to={today.isoformat()}")
    section = page.locator("#daily-stats")
    gmv = section.locator('[data-metric="gmv_fen"]')
    expect(gmv.locator("svg rect.bar")).to_have_count(7)
    assert float(gmv.locator("svg rect.bar").last.get_attribute("height")) > 0
    expect(section.locator('[data-metric="paid_orders"] h3')).not_to_contain_text("合计 0）")
    expect(page.locator("#stats-overview .stat").first).to_be_visible()
    screenshot(page, "dashboard-daily")
    # Another range through the picker.
    section.get_by_label("开始日期").fill((today - dt.timedelta(days=2)).isoformat())
    section.get_by_role("button", name="查询").click()
    expect(page.locator('#daily-stats [data-metric="dau"] svg rect.bar')).to_have_count(3)
    with page.expect_download() as done:
        page.locator("#daily-csv").click()
    download = done.value
    assert download.suggested_filename == (
        f"pawhome-daily-{(today - dt.timedelta(days=2)).isoformat()}-{today.isoformat()}.csv")
    lines = open(download.path(), encoding="utf-8-sig").read().splitlines()
    assert lines[0].startswith("day,dau,mau,new_users") and lines[1].startswith("日期,")
    assert len(lines) == 2 + 3 and lines[-1].startswith(today.isoformat())

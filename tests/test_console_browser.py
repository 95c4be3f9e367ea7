"""The web console end to end in a real browser (Debian's chromium through Playwright)
against a real gateway process on the test database and Redis: sign-in, lockout, the CSP,
user text rendered as text, the moderation queue updating live, shipping an order, editing
stock, and a merchant kept out of another merchant's orders even by typing the URL.

Data is made through the API (the in-process app, same database and Redis); what a test
checks is what the page shows. Screenshots of the main pages go to var/screenshots/.
"""
from __future__ import annotations

import re
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.console_browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Backend,
    feedback_ticket,
    paid_order,
    require_chromium,
    screenshot,
    sign_in_page,
    start_console_gateway,
)
from tests.console_support import PASSWORD

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def browser_type_launch_args():
    require_chromium()
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


# pytest-playwright keeps Playwright (and its browser) for the whole session, and Playwright's
# sync API leaves its event loop marked running on this thread while it lives: every later
# test of this worker that runs an IOLoop would fail. So Playwright and the one browser live
# for this module instead (pytest-playwright's context, page and artefact fixtures as usual).
@pytest.fixture(scope="module")
def playwright():
    require_chromium()
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser_type(playwright, browser_name):
    return getattr(playwright, browser_name)


@pytest.fixture(scope="module")
def launch_browser(browser_type_launch_args, browser_type):
    def launch(**kwargs):
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})
    return launch


@pytest.fixture(scope="module")
def browser(launch_browser):
    opened = launch_browser()
    yield opened
    opened.close()


@pytest.fixture
def browser_context_args():
    return {"locale": "zh-CN", "viewport": {"width": 1366, "height": 820}}


@pytest.fixture(scope="module")
def console():
    require_chromium()
    gateway = start_console_gateway()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def backend(console):
    made = Backend(console.base_url)
    yield made
    made.close()


@pytest.fixture(autouse=True)
def clear_rate_limits(backend) -> None:
    """(Replaces the suite's IOLoop-based one: Playwright's loop owns this thread.)"""
    backend.clear_rate_limits()


# -- sign-in -----------------------------------------------------------------------------------

def test_staff_sign_in_shows_the_dashboard(console, page, backend):
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    expect(page.get_by_role("heading", name="数据概览")).to_be_visible()
    expect(page.locator("#whoami")).to_contain_text("管理员")
    expect(page.locator(".chart svg").first).to_be_visible()
    expect(page.locator("#live-state")).to_have_text("● 实时")
    screenshot(page, "dashboard")
    cookie = next(c for c in page.context.cookies() if c["name"] == "pawhome_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("pawhome_console") == -1  # HttpOnly
    page.get_by_role("button", name="退出登录").click()
    expect(page.locator("#signin-error")).to_have_text("已退出登录")
    page.reload()
    expect(page.get_by_role("button", name="登录")).to_be_visible()


def test_a_wrong_password_is_refused_then_the_account_locks(console, page, backend,
                                                             settings):
    staff = backend.make_staff("merchant")
    page.goto(f"{console.base_url}/console")
    page.get_by_label("登录名").fill(staff["login"])
    page.get_by_label("密码").fill("not the password")
    for _ in range(settings.console_max_failed_logins - 1):
        page.get_by_role("button", name="登录").click()
        expect(page.locator("#signin-error")).to_have_text("登录名或密码错误")
        page.locator("#signin-error").evaluate("e => e.textContent = ''")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#signin-error")).to_contain_text("账号已暂时锁定")
    page.get_by_label("密码").fill(PASSWORD)  # the right one, too late
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#signin-error")).to_contain_text("账号已暂时锁定")
    screenshot(page, "sign-in-locked")
    expect(page.locator("#shell")).to_be_hidden()


def test_outside_embedded_mode_no_console_account_is_printed(console):
    assert "dev token" in console.log()  # the development banner was printed...
    assert "console:" not in console.log() and " / " not in console.log()  # ...no sign-ins


def test_the_console_is_served_with_a_strict_content_security_policy(console):
    with urllib.request.urlopen(f"{console.base_url}/console") as reply:
        csp = reply.headers["Content-Security-Policy"]
        assert reply.headers["X-Frame-Options"] == "DENY"
        html = reply.read().decode()
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert "<script>" not in html and "style=" not in html  # nothing inline to allow
    with urllib.request.urlopen(f"{console.base_url}/console/assets/app.js") as reply:
        assert reply.headers["Content-Type"].startswith("text/javascript")
        assert "eval(" not in reply.read().decode()


def test_inline_script_is_blocked_by_the_policy(console, page, backend):
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    messages = []
    page.on("console", lambda m: messages.append(m.text))
    page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.injected = 1'; document.body.append(s); }""")
    assert page.evaluate("window.injected") is None
    assert any("Content Security Policy" in m for m in messages)


# -- moderation ----------------------------------------------------------------------------------

def test_post_text_with_a_script_tag_renders_as_text(console, page, backend):
    marker = uuid.uuid4().hex[:8]
    hostile = f'<script>window.pwned="{marker}"</script><img src=x onerror="window.pwned=1"> {marker}'
    backend.held_post(hostile)
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/moderation?kind=post&state=hidden&page=1")
    item = page.locator(".item", has_text=marker)
    expect(item.locator(".text")).to_have_text(hostile)
    assert page.evaluate("window.pwned") is None
    assert item.locator("script").count() == 0 and item.locator("img[src=x]").count() == 0


def test_an_approved_post_leaves_the_open_queue_live(console, page, backend):
    marker = uuid.uuid4().hex[:8]
    first = backend.held_post(f"第一条待审帖子 {marker}")
    second = backend.held_post(f"第二条待审帖子 {marker}")
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/moderation?kind=post&state=hidden&limit=20")
    expect(page.locator(f'[data-target="post:{first}"]')).to_be_visible()
    expect(page.locator(f'[data-target="post:{second}"]')).to_be_visible()
    expect(page.locator("#live-state")).to_have_text("● 实时")
    screenshot(page, "moderation")
    # Approved on this page: the item goes.
    page.locator(f'[data-target="post:{first}"]').get_by_role("button", name="通过").click()
    expect(page.locator(f'[data-target="post:{first}"]')).to_have_count(0)
    # Approved by another admin through the API, while the page stays open: it goes too,
    # with no reload (the staff:moderation topic through the gateway's hub).
    other = backend.login("admin")
    page.evaluate("window.notReloaded = true")
    backend.call("POST", f"/v1/admin/moderation/post/{second}/approve",
                 token=other["access_token"])
    expect(page.locator(f'[data-target="post:{second}"]')).to_have_count(0, timeout=10_000)
    assert page.evaluate("window.notReloaded") is True


def test_rejecting_asks_for_a_reason(console, page, backend):
    marker = uuid.uuid4().hex[:8]
    post_id = backend.held_post(f"要驳回的帖子 {marker}")
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/moderation?kind=post&state=hidden")
    page.locator(f'[data-target="post:{post_id}"]').get_by_role("button", name="驳回").click()
    page.get_by_label("理由（会通知作者）").fill("广告内容")
    page.locator("dialog").get_by_role("button", name="驳回").click()
    expect(page.locator(f'[data-target="post:{post_id}"]')).to_have_count(0)
    admin = backend.login("admin")
    queue = backend.call("GET", "/v1/admin/moderation?kind=post&state=hidden&limit=100",
                         token=admin["access_token"])
    assert post_id not in [i["target_id"] for i in queue["items"]]


def test_merchant_staff_do_not_see_admin_pages(console, page, backend):
    staff = backend.make_staff("merchant")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    nav = page.locator("#nav")
    expect(nav).to_contain_text("订单")
    expect(nav).not_to_contain_text("内容审核")
    page.goto(f"{console.base_url}/console#/moderation")
    expect(page.get_by_role("heading", name="无权访问")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/moderation$"))


# -- the mall ------------------------------------------------------------------------------------

def test_a_merchant_ships_a_paid_order(console, page, backend):
    shop = paid_order(backend)
    order = shop["order"]
    staff = backend.make_staff("merchant", user_id=shop["merchant_id"])
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/orders?status=paid")
    row = page.locator(f'#orders-list tr[data-id="{order["id"]}"]')
    expect(row).to_contain_text("待发货")
    screenshot(page, "orders")
    row.get_by_role("button", name="发货").click()
    page.get_by_label("运单号").fill("SF1234567890")
    page.get_by_role("button", name="确认发货").click()
    expect(page.locator(f'#orders-list tr[data-id="{order["id"]}"]')).to_have_count(0)
    page.goto(f"{console.base_url}/console#/orders/{order['id']}")
    expect(page.locator("#order-status")).to_have_text("已发货")
    expect(page.get_by_text("SF1234567890")).to_be_visible()
    screenshot(page, "order-detail")
    seen = backend.call("GET", f"/v1/orders/{order['id']}", token=shop["buyer_token"])
    assert (seen["status"], seen["tracking_no"]) == ("shipped", "SF1234567890")


def test_the_orders_list_shows_a_new_paid_order_live(console, page, backend):
    shop = paid_order(backend)
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/orders?status=shipped")
    expect(page.locator("#live-state")).to_have_text("● 实时")
    page.wait_for_timeout(300)  # the staff:orders subscription is sent once the page is up
    merchant = backend.login("admin")
    backend.call("POST", f"/v1/merchant/orders/{shop['order']['id']}/ship",
                 token=merchant["access_token"],
                 json={"carrier": "顺丰速运", "tracking_no": "SF0000000001"})
    expect(page.locator(f'#orders-list tr[data-id="{shop["order"]["id"]}"]')).to_be_visible(
        timeout=10_000)


def test_a_merchant_edits_a_skus_stock(console, page, backend):
    shop = paid_order(backend, stock=10)  # 2 sold: 8 left
    staff = backend.make_staff("merchant", user_id=shop["merchant_id"])
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/products")
    page.locator(f'tr[data-id="{shop["product_id"]}"] a').click()
    row = page.locator(f'tr[data-id="{shop["sku_id"]}"]')
    expect(row.locator(".stock")).to_have_text("8")
    row.get_by_role("button", name="调整库存").click()
    page.get_by_label("调整后库存").fill("25")
    page.get_by_label("原因").fill("到货补库存")
    page.get_by_role("button", name="保存").click()
    expect(row.locator(".stock")).to_have_text("25")
    screenshot(page, "product-stock")
    movements = backend.call("GET", f"/v1/merchant/skus/{shop['sku_id']}/stock-movements",
                             token=backend.login("admin")["access_token"])
    assert movements["items"][0]["delta"] == 17


def test_a_merchant_cannot_see_another_merchants_order_even_by_typing_the_url(console, page,
                                                                               backend):
    mine = paid_order(backend)
    theirs = paid_order(backend)
    staff = backend.make_staff("merchant", user_id=mine["merchant_id"])
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/orders")
    expect(page.locator(f'#orders-list tr[data-id="{mine["order"]["id"]}"]')).to_be_visible()
    expect(page.locator(f'#orders-list tr[data-id="{theirs["order"]["id"]}"]')).to_have_count(0)
    page.goto(f"{console.base_url}/console#/orders/{theirs['order']['id']}")
    expect(page.get_by_role("heading", name="订单不存在或无权查看")).to_be_visible()
    expect(page.get_by_text(theirs["order"]["order_no"])).to_have_count(0)
    page.goto(f"{console.base_url}/console#/products/{theirs['product_id']}")
    expect(page.get_by_role("heading", name="商品不存在或无权查看")).to_be_visible()
    # Nor through the API with the page's own session (what a typed fetch would do).
    status = page.evaluate("""async (id) => (await fetch(`/v1/merchant/orders/${id}`)).status""",
                           theirs["order"]["id"])
    assert status == 404
    status = page.evaluate("""async (id) => (await fetch(`/v1/merchant/orders/${id}/ship`, {
        method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({carrier: 'x', tracking_no: 'X1'})})).status""",
                           theirs["order"]["id"])
    assert status == 403  # no CSRF header: refused before anything else


# -- feedback -------------------------------------------------------------------------------------

def test_staff_reply_to_feedback_and_the_user_sees_it(console, page, backend):
    marker = uuid.uuid4().hex[:8]
    ticket_id, user_token = feedback_ticket(backend, f"希望能按宠物品种筛选帖子 <b>{marker}</b>")
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/feedback?status=open")
    page.locator("#feedback-list").get_by_role("link", name=f"#{ticket_id}").click()
    expect(page.locator(".item .text")).to_have_text(f"希望能按宠物品种筛选帖子 <b>{marker}</b>")
    page.get_by_label("回复内容").fill("谢谢建议，下个版本会加上品种筛选 🐾")
    page.get_by_role("button", name="发送回复").click()
    expect(page.locator("#feedback-status")).to_have_text("已回复")
    expect(page.locator("#feedback-replies")).to_contain_text("下个版本会加上品种筛选")
    screenshot(page, "feedback")
    mine = backend.call("GET", f"/v1/feedback/{ticket_id}", token=user_token)
    assert mine["status"] == "replied"
    assert mine["replies"][0]["text"] == "谢谢建议，下个版本会加上品种筛选 🐾"


def test_every_page_renders_for_an_admin(console, page, backend):
    """A tour of the menu: each page loads without an error; screenshots for a person."""
    staff = backend.make_staff("admin")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    links = page.locator("#nav a")
    names = [links.nth(i).get_attribute("data-page") for i in range(links.count())]
    assert {"dashboard", "moderation", "users", "feedback", "orders", "products", "refunds",
            "services", "audit", "dead-letters"} <= set(names)
    for name in names:
        page.goto(f"{console.base_url}/console#/{name}")
        expect(page.locator("#page h2").first).to_be_visible()
        expect(page.locator("#page .error")).to_have_count(0)
        screenshot(page, f"page-{name}")
    assert errors == []


# -- activities (docs/activities.md) ------------------------------------------------------------

def test_a_merchant_creates_publishes_and_checks_a_registrant_in_by_code(
        console, page, backend, celery_worker_process):
    from tests.media_helpers import jpeg_bytes

    merchant = backend.login("merchant")
    staff = backend.make_staff("merchant", user_id=merchant["user_id"])
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/activities")
    expect(page.get_by_role("heading", name="活动报名")).to_be_visible()
    page.get_by_role("link", name="新建活动").click()
    title = "狗狗公园聚会 " + uuid.uuid4().hex[:4]
    page.get_by_label("标题", exact=True).fill(title)
    page.get_by_label("地点名称").fill("深圳湾公园")
    page.get_by_label("纬度").fill("22.51")
    page.get_by_label("经度").fill("113.95")
    page.get_by_label("开始时间", exact=True).fill("2030-05-01T10:00")
    page.get_by_label("结束时间", exact=True).fill("2030-05-01T12:00")
    page.get_by_label("名额", exact=True).fill("10")
    page.get_by_label("报名表字段").fill("pet_name 宠物名 text 必填")
    # A cover uploaded from the page (the media flow; the worker makes it ready).
    page.get_by_label("上传封面").set_input_files(
        {"name": "cover.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes(900, 500)})
    expect(page.locator("#activity-form .image-list figure")).to_have_count(1, timeout=60_000)
    cover_id = int(page.locator("#activity-form .image-list figure").get_attribute(
        "data-media-id"))
    page.get_by_role("button", name="保存").click()
    expect(page.locator("#activity-status")).to_have_text("草稿")
    page.get_by_role("button", name="发布").click()
    expect(page.locator("#activity-status")).to_have_text("已发布")
    activity_id = int(page.url.rsplit("/", 1)[1])
    public = backend.call("GET", f"/v1/activities/{activity_id}")
    assert public["cover_media_id"] == cover_id and public["cover"]["media_id"] == cover_id
    user = backend.login()
    made = backend.call("POST", f"/v1/activities/{activity_id}/registrations",
                        json={"answers": {"pet_name": "<b>旺财</b>"}}, token=user["access_token"],
                        headers={"Idempotency-Key": uuid.uuid4().hex}, expect=201)
    page.reload()
    row = page.locator(f'#registrations-list tr[data-id="{made["id"]}"]')
    expect(row.locator(".reg-status")).to_have_text("已报名")
    expect(row).to_contain_text("pet_name: <b>旺财</b>")  # user text as text
    page.get_by_label("签到码").fill(made["check_in_code"].lower())
    page.get_by_role("button", name="签到", exact=True).click()
    expect(row.locator(".reg-status")).to_have_text("已签到")
    expect(page.locator("#activity-seats")).to_contain_text("已签到 1")
    screenshot(page, "activity")
    # Another merchant cannot open it, even by typing the URL.
    rival = backend.make_staff("merchant")
    page.get_by_role("button", name="退出登录").click()
    sign_in_page(page, console.base_url, rival["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/activities/{activity_id}")
    expect(page.get_by_role("heading", name="活动不存在或无权查看")).to_be_visible()
    expect(page.get_by_text(title)).to_have_count(0)

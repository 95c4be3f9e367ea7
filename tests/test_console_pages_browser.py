"""The console's operations pages end to end in chromium (same harness as
test_console_browser.py: one browser and one gateway process for the module): the dashboard's
daily statistics and CSV export, mall categories, coupons, group-buy rules, home banners and
pop-ups, points rules, virtual items and reconciliation reports; and a merchant kept out of
the admin-only ones (menu, typed URL and the API with the page's own session).
"""
from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.console_browser_support import paid_order, screenshot, sign_in_page
from tests.console_support import PASSWORD

# The module-scoped browser, gateway and test-data fixtures of the first browser module.
from tests.test_console_browser import (  # noqa: F401
    backend,
    browser,
    browser_type,
    browser_type_launch_args,
    clear_rate_limits,
    console,
    launch_browser,
    playwright,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def browser_context_args():
    return {"locale": "zh-CN", "timezone_id": "Asia/Shanghai",
            "viewport": {"width": 1366, "height": 820}}


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


# -- mall categories, coupons, group-buys -----------------------------------------------------

def test_an_admin_adds_edits_and_sorts_categories(console, page, backend):
    marker = uuid.uuid4().hex[:6]
    admin_page(page, console, backend, "categories")
    for name in (f"猫粮{marker}", f"狗粮{marker}"):
        page.get_by_role("button", name="新增一级分类").click()
        page.get_by_label("名称").fill(name)
        page.get_by_label("排序（小的在前）").fill("900000")
        page.locator("dialog").get_by_role("button", name="添加").click()
        expect(page.locator("#categories tr", has_text=name)).to_be_visible()
    cat, dog = (page.locator("#categories tr", has_text=f"{k}{marker}") for k in ("猫粮", "狗粮"))
    dog.get_by_role("button", name="编辑").click()
    page.get_by_label("名称").fill(f"狗狗主粮{marker}")
    page.locator("dialog").get_by_role("button", name="保存").click()
    dog = page.locator("#categories tr", has_text=f"狗狗主粮{marker}")
    expect(dog).to_be_visible()
    dog.get_by_role("button", name="上移").click()  # above the cat food now
    expect(page.locator("#categories tr .name", has_text=marker).first).to_have_text(
        f"狗狗主粮{marker}")
    screenshot(page, "categories")
    tree = backend.call("GET", "/v1/admin/categories", token=admin_token(backend))["items"]
    names = [c["name"] for c in tree if marker in c["name"]]
    assert names == [f"狗狗主粮{marker}", f"猫粮{marker}"]
    cat.get_by_role("button", name="添加子类").click()
    page.get_by_label("名称").fill(f"幼猫粮{marker}")
    page.locator("dialog").get_by_role("button", name="添加").click()
    expect(page.locator("#categories .depth-1", has_text=f"幼猫粮{marker}")).to_be_visible()


def test_a_merchant_creates_a_coupon_sees_it_listed_and_stops_it(console, page, backend):
    shop = paid_order(backend)
    staff = backend.make_staff("merchant", user_id=shop["merchant_id"])
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/coupons")
    name = "满99减10 " + uuid.uuid4().hex[:4]
    page.get_by_role("button", name="新建优惠券").click()
    page.get_by_label("名称").fill(name)
    page.get_by_label("减免金额（元，满减 / 无门槛）").fill("10.5")
    page.get_by_label("发行总量").fill("200")
    page.locator("dialog").get_by_role("button", name="创建").click()
    row = page.locator("#coupons-list tr", has_text=name)
    expect(row).to_contain_text("满 ¥99.00 减 ¥10.50")
    expect(row.locator(".issued")).to_have_text("0 / 200")
    row.get_by_role("button", name="编辑").click()
    page.get_by_label("发行总量（已领 0）").fill("300")
    page.locator("dialog").get_by_role("button", name="保存").click()
    expect(row.locator(".issued")).to_have_text("0 / 300")
    screenshot(page, "coupons")
    row.get_by_role("button", name="停发").click()
    page.locator("dialog").get_by_role("button", name="停发").click()
    expect(row).to_contain_text("已停发")
    admin = admin_token(backend)
    mine = backend.call("GET", f"/v1/merchant/coupon-templates?merchant_id={shop['merchant_id']}",
                        token=admin)["items"]
    assert [(t["name"], t["amount_off"], t["total_quantity"], t["status"]) for t in mine] == [
        (name, 1050, 300, "stopped")]


def test_a_merchant_sells_a_sku_by_group_buy_and_stops_it(console, page, backend):
    shop = paid_order(backend)  # a SKU at ¥19.90
    staff = backend.make_staff("merchant", user_id=shop["merchant_id"])
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/group-buys")
    page.get_by_role("button", name="新建拼团").click()
    page.get_by_label("SKU ID（商品详情页可查）").fill(str(shop["sku_id"]))
    page.get_by_label("成团人数（2–50）").fill("3")
    page.get_by_label("拼团价（元）").fill("25")  # above the price: refused
    page.locator("dialog").get_by_role("button", name="创建").click()
    expect(page.locator(".toast.bad")).to_contain_text("group_price")
    page.get_by_role("button", name="新建拼团").click()
    page.get_by_label("SKU ID（商品详情页可查）").fill(str(shop["sku_id"]))
    page.get_by_label("成团人数（2–50）").fill("3")
    page.get_by_label("拼团价（元）").fill("15.90")
    page.locator("dialog").get_by_role("button", name="创建").click()
    row = page.locator("#group-buys-list tbody tr").first
    expect(row.locator(".price")).to_have_text("¥15.90")
    expect(row).to_contain_text("进行中")
    screenshot(page, "group-buys")
    row.get_by_role("button", name="停止").click()
    expect(row).to_contain_text("已停止")
    rules = backend.call("GET", "/v1/merchant/group-buy-rules?limit=100",
                         token=admin_token(backend))["items"]
    assert [(r["group_size"], r["group_price"], r["status"]) for r in rules
            if r["sku_id"] == shop["sku_id"]] == [(3, 1590, "stopped")]


# -- the mall home ----------------------------------------------------------------------------

def test_an_admin_adds_and_edits_a_banner_and_picks_a_slots_products(console, page, backend):
    marker = uuid.uuid4().hex[:6]
    shop = paid_order(backend)
    admin_page(page, console, backend, "home?tab=banners")
    page.get_by_role("button", name="新增轮播图").click()
    page.get_by_label("标题").fill(f"双十一 {marker}")
    page.get_by_label("图片地址（https://）").fill(f"https://img.example.com/{marker}.jpg")
    page.locator("dialog select[name=link_type]").select_option("product")
    page.get_by_label("跳转目标（商品 / 分类 ID、页面路径或网址）").fill(str(shop["product_id"]))
    page.locator("dialog").get_by_role("button", name="添加").click()
    row = page.locator("#home-banners tr", has_text=marker)
    expect(row).to_contain_text(f"商品：{shop['product_id']}")
    row.get_by_role("button", name="编辑").click()
    page.get_by_label("标题").fill(f"年货节 {marker}")
    page.get_by_label("开始时间（北京时间，留空：立即）").fill("2030-01-20T10:00")
    page.locator("dialog").get_by_role("button", name="保存").click()
    expect(row.locator(".title")).to_have_text(f"年货节 {marker}")
    expect(row).to_contain_text("2030-01-20 10:00")  # the staff's browser is in Beijing
    screenshot(page, "home-banners")
    banners = backend.call("GET", "/v1/admin/home/banners", token=admin_token(backend))["items"]
    (banner,) = [b for b in banners if marker in b["title"]]
    assert banner["starts_at"] == "2030-01-20T02:00:00Z" and banner["link_value"] == str(
        shop["product_id"])
    page.get_by_role("button", name="商品位").click()
    slot = page.locator('[data-slot="recommended"]')
    slot.get_by_role("button", name="编辑").click()
    page.get_by_label("商品 ID（按顺序，逗号分隔；须在售）").fill(str(shop["product_id"]))
    page.locator("dialog").get_by_role("button", name="保存").click()
    expect(slot.locator(".picked")).to_have_text(f"已选商品：{shop['product_id']}")
    expect(slot.locator(f'tr[data-id="{shop["product_id"]}"]')).to_be_visible()
    screenshot(page, "home-slots")


# -- points rules -----------------------------------------------------------------------------

def test_an_admin_changes_a_points_rule(console, page, backend):
    token = admin_token(backend)
    before = backend.call("GET", "/v1/admin/points/rules", token=token)
    try:
        admin_page(page, console, backend, "points")
        form = page.locator("#points-rules")
        expect(form.get_by_label("每日签到积分")).to_have_value(str(before["checkin_points"]))
        form.get_by_label("每日签到积分").fill("15")
        form.get_by_label("连续签到奖励").fill("7:40，30：120")
        form.get_by_role("button", name="保存规则").click()
        expect(page.locator(".toast")).to_have_text("积分规则已保存")
        expect(form.get_by_label("连续签到奖励")).to_have_value("7:40, 30:120")
        screenshot(page, "points-rules")
        after = backend.call("GET", "/v1/admin/points/rules", token=token)
        assert after == {**before, "checkin_points": 15, "streak_bonuses": [
            {"days": 7, "points": 40}, {"days": 30, "points": 120}]}
        form.get_by_label("积分抵现上限（%）").fill("101")  # the API's field error, shown
        form.get_by_role("button", name="保存规则").click()
        expect(page.locator(".toast.bad")).to_contain_text("payment_max_percent")
    finally:  # the rules are shared by this worker's other tests
        backend.call("PUT", "/v1/admin/points/rules", token=token, json=before)


# -- reconciliation -----------------------------------------------------------------------------

def test_an_admin_opens_a_reconciliation_report_and_runs_the_points_check(console, page, backend):
    from sqlalchemy import delete

    from models.payments import ReconciliationReport

    day = dt.date(2021, 1, 1) + dt.timedelta(days=int(uuid.uuid4().hex[:6], 16) % 1000)
    trade_no = "PH" + uuid.uuid4().hex[:16]

    async def report() -> None:
        async with backend.resources.db.session() as session, session.begin():
            await session.execute(delete(ReconciliationReport).where(
                ReconciliationReport.bill_date == day))  # a day an earlier run drew
            session.add(ReconciliationReport(
                bill_date=day, status="mismatched", bill_count=3, our_count=2, bill_total=5980,
                our_total=3990, mismatch_count=1, mismatches=[{
                    "kind": "missing_here", "out_trade_no": trade_no,
                    "transaction_id": "4200000001", "bill_amount": 1990,
                    "our_status": "prepaid"}]))

    backend.run(report)
    admin_page(page, console, backend, "reconciliation?limit=100")
    page.goto(f"{console.base_url}/console#/reconciliation/{day.isoformat()}")
    expect(page.locator("#report-status")).to_have_text("有差异")
    row = page.locator("#mismatches tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("账单有、我方未记为已支付")
    expect(row).to_contain_text(trade_no)
    expect(row).to_contain_text("¥19.90")
    expect(page.get_by_text("我方笔数 · 净额 ¥39.90")).to_be_visible()
    screenshot(page, "reconciliation-report")
    page.get_by_role("link", name="← 返回对账报告").click()
    run_now = page.get_by_role("button", name="立即核对")
    expect(run_now).to_be_visible()  # the list of runs is drawn before the button
    runs = page.locator("#points-runs tbody tr").filter(has_not_text="还没有积分核对记录")
    before = runs.count()
    run_now.click()
    expect(page.locator(".toast")).to_have_text("积分核对已完成")
    expect(runs).to_have_count(min(before + 1, 5))  # redrawn with the new run (5 a page)
    expect(runs.first).to_contain_text("0")
    screenshot(page, "reconciliation")


# -- virtual items ------------------------------------------------------------------------------

def test_a_merchant_adds_a_virtual_item_and_an_admin_takes_one_off_sale(console, page, backend):
    from tests.mall_support import make_shop
    from tests.points_support import make_points_product

    async def shop() -> tuple[int, int]:
        merchant, _ = await make_shop(backend.resources)
        crown, _ = await make_points_product(backend.resources, merchant.user_id, price=0,
                                             points_price=1500, stock=-1,
                                             kind="virtual_pet_accessory", name="小皇冠")
        return merchant.user_id, crown

    merchant_id, crown = backend.run(shop)
    staff = backend.make_staff("merchant", user_id=merchant_id)
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/virtual-items")
    page.get_by_role("button", name="新增虚拟物品").click()
    page.get_by_label("名称").fill("毛线球")
    page.locator("dialog select[name=kind]").select_option("virtual_pet_toy")
    page.get_by_label("效果说明").fill("心情 +20")
    page.get_by_label("积分价").fill("250")
    page.locator("dialog").get_by_role("button", name="添加").click()
    expect(page).to_have_url(re.compile(r"kind=virtual_pet_toy"))
    row = page.locator("#virtual-items tbody tr", has_text="毛线球")
    expect(row.locator(".points")).to_have_text("250")
    expect(row).to_contain_text("不限")
    expect(row.locator(".status")).to_have_text("草稿")
    screenshot(page, "virtual-items")
    toy = int(row.get_attribute("data-id"))
    made = backend.call("GET", f"/v1/merchant/products/{toy}", token=admin_token(backend))
    assert made["kind"] == "virtual_pet_toy" and [(s["points_price"], s["stock"], s["price"])
                                                  for s in made["skus"]] == [(250, -1, 0)]
    # An admin sees every shop's and takes the crown off sale.
    page.context.clear_cookies()
    admin_page(page, console, backend, "virtual-items?kind=virtual_pet_accessory&limit=100")
    row = page.locator(f'#virtual-items tr[data-id="{crown}"]')
    expect(row.locator(".status")).to_have_text("在售")
    row.get_by_role("button", name="下架").click()
    page.get_by_label("原因（商家可见）").fill("限量活动已结束")
    page.locator("dialog").get_by_role("button", name="下架").click()
    expect(row.locator(".status")).to_have_text("已下架")


# -- the product editor ------------------------------------------------------------------------

def _merchant_with_category(backend) -> tuple[dict, int]:
    """A merchant with a shop (its console account signed in by the caller) and an enabled
    category made through the admin API (so the cached category tree knows it)."""
    from tests.mall_support import make_shop

    merchant, _ = backend.run(make_shop, backend.resources)
    category = backend.call("POST", "/v1/admin/categories", token=admin_token(backend),
                            json={"name": "猫粮" + uuid.uuid4().hex[:4]}, expect=201)
    return backend.make_staff("merchant", user_id=merchant.user_id), category["id"]


def _merchant_on(page, console, backend, path: str) -> tuple[dict, int]:
    """A new merchant (and category) signed in on the console page `path`."""
    staff, category_id = _merchant_with_category(backend)
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/{path}")
    return staff, category_id


def _image_files() -> list[dict]:
    from tests.media_helpers import jpeg_bytes

    return [{"name": "front.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes(800, 600)},
            {"name": "side.jpg", "mimeType": "image/jpeg",
             "buffer": jpeg_bytes(640, 480, split_colours=True)}]


def test_a_merchant_creates_a_product_with_uploaded_images_and_skus_then_edits_it(
        console, page, backend, celery_worker_process):
    staff, category_id = _merchant_on(page, console, backend, "products")
    page.get_by_role("link", name="新增商品").click()
    form = page.locator("#product-form")
    form.get_by_label("商品名称").fill("冻干鸡肉猫粮")
    form.get_by_label("副标题").fill("高蛋白 无谷")
    form.locator("select[name=category_id]").select_option(str(category_id))
    form.get_by_label("标签（逗号分隔，最多 10 个）").fill("冻干, 无谷")
    form.get_by_role("checkbox", name="猫").check()
    form.get_by_label("商品描述").fill("鸡肉含量 90%")
    # Two images through the media flow (presigned PUT, complete, the worker makes them ready).
    form.get_by_label("上传商品图").set_input_files(_image_files())
    figures = form.locator(".image-list figure")
    expect(figures).to_have_count(2, timeout=60_000)
    expect(figures.first.locator("img")).to_have_attribute("src", re.compile(r"^http://127\.0\.0\.1"))
    first, second = (int(f.get_attribute("data-media-id")) for f in figures.all())
    form.get_by_role("button", name="前移商品图 2").click()  # the second becomes the cover
    # Two flavours: two SKUs with their own prices and stock.
    form.get_by_role("button", name="添加规格").click()
    form.get_by_label("规格名").fill("口味")
    form.get_by_label("规格值").fill("鸡肉, 牛肉")
    form.get_by_role("button", name="生成 SKU 列表").click()
    rows = form.locator("#sku-table .sku-row")
    expect(rows).to_have_count(2)
    for row, (price, original, stock) in zip(rows.all(), (("59.90", "", "10"),
                                                          ("69.9", "79.9", "5")), strict=True):
        row.get_by_label("价格（元）").fill(price)
        row.get_by_label("划线价（元）").fill(original)
        row.get_by_label("初始库存").fill(stock)
    screenshot(page, "product-editor")
    form.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(r"#/products/\d+$"))
    product_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#product-status")).to_have_text("草稿")
    expect(page.locator(".image-list img")).to_have_count(2)
    screenshot(page, "product-page")
    made = backend.call("GET", f"/v1/merchant/products/{product_id}",
                        token=admin_token(backend))
    assert made["merchant_id"] == staff["user_id"] and made["kind"] == "physical"
    assert made["media_ids"] == [second, first] and made["category_id"] == category_id
    assert (made["name"], made["subtitle"], made["tags"], made["pet_types"]) == (
        "冻干鸡肉猫粮", "高蛋白 无谷", ["冻干", "无谷"], ["cat"])
    assert made["spec_attrs"] == [{"name": "口味", "values": ["鸡肉", "牛肉"]}]
    assert [(s["spec_values"], s["price"], s["original_price"], s["stock"])
            for s in made["skus"]] == [(["鸡肉"], 5990, 0, 10), (["牛肉"], 6990, 7990, 5)]

    # An edit: a price the API refuses shows its field error and changes nothing...
    page.locator("#product-actions").get_by_role("link", name="编辑").click()
    form = page.locator("#product-form")
    chicken = form.locator('#sku-table .sku-row[data-spec="鸡肉"]')
    expect(chicken.get_by_label("初始库存")).to_be_disabled()  # stock moves by adjustments
    chicken.get_by_label("价格（元）").fill("0")
    form.get_by_role("button", name="保存").click()
    expect(page.locator('#product-errors li[data-field="skus.0.price"]')).to_be_visible()
    assert backend.call("GET", f"/v1/merchant/products/{product_id}",
                        token=admin_token(backend))["skus"][0]["price"] == 5990
    # ...a right one saves, with a new name and one image fewer; the SKU keeps its stock.
    chicken.get_by_label("价格（元）").fill("49.90")
    form.get_by_label("商品名称").fill("冻干鸡肉猫粮（新）")
    form.get_by_role("button", name="删除商品图 2").click()
    form.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(rf"#/products/{product_id}$"))
    edited = backend.call("GET", f"/v1/merchant/products/{product_id}",
                          token=admin_token(backend))
    assert edited["name"] == "冻干鸡肉猫粮（新）" and edited["media_ids"] == [second]
    assert [(s["id"], s["price"], s["stock"]) for s in edited["skus"]] == [
        (made["skus"][0]["id"], 4990, 10), (made["skus"][1]["id"], 6990, 5)]
    # On sale: it goes to review (the review worker may pass it at once).
    page.locator("#product-actions").get_by_role("button", name="提交上架").click()
    expect(page.locator("#product-status")).to_have_text(re.compile("审核中|在售"))

    # Another merchant cannot open it in the editor, even by typing the URL.
    other, _ = _merchant_with_category(backend)
    page.context.clear_cookies()
    sign_in_page(page, console.base_url, other["login"], PASSWORD)
    page.goto(f"{console.base_url}/console#/products/{product_id}/edit")
    expect(page.get_by_role("heading", name="商品不存在或无权查看")).to_be_visible()
    expect(page.locator("#product-form")).to_have_count(0)


def test_a_merchant_gives_a_virtual_item_an_image_and_puts_it_on_sale(
        console, page, backend, celery_worker_process):
    _, category_id = _merchant_on(page, console, backend,
                                  "virtual-items?kind=virtual_pet_food")
    page.get_by_role("button", name="新增虚拟物品").click()
    page.get_by_label("名称").fill("小鱼干")
    page.get_by_label("积分价").fill("120")
    page.locator("dialog").get_by_role("button", name="添加").click()
    row = page.locator("#virtual-items tbody tr", has_text="小鱼干")
    expect(row.locator(".status")).to_have_text("草稿")
    item = int(row.get_attribute("data-id"))
    # Without an image and a category it cannot go on sale: the console says why.
    row.get_by_role("button", name="上架").click()
    expect(page.locator(".toast.bad")).to_contain_text("media_ids")
    row.get_by_role("link", name="编辑").click()
    form = page.locator("#product-form")
    expect(form.locator("select[name=kind]")).to_have_value("virtual_pet_food")
    expect(form.locator('#sku-table .sku-row').get_by_label("积分价")).to_have_value("120")
    form.locator("select[name=category_id]").select_option(str(category_id))
    form.get_by_label("上传商品图").set_input_files(_image_files()[:1])
    expect(form.locator(".image-list figure")).to_have_count(1, timeout=60_000)
    form.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(rf"#/products/{item}$"))
    page.locator("#product-actions").get_by_role("button", name="提交上架").click()
    expect(page.locator("#product-status")).to_have_text(re.compile("审核中|在售"))
    saved = backend.call("GET", f"/v1/merchant/products/{item}", token=admin_token(backend))
    assert saved["status"] in ("reviewing", "on_sale") and len(saved["media_ids"]) == 1
    assert [(s["points_price"], s["stock"]) for s in saved["skus"]] == [(120, -1)]
    # An admin passes it if the review held it; it is then on sale in the points mall.
    if saved["status"] == "reviewing":
        page.context.clear_cookies()
        admin_page(page, console, backend, "virtual-items?kind=virtual_pet_food")
        row = page.locator(f'#virtual-items tr[data-id="{item}"]')
        row.get_by_role("button", name="通过").click()
        expect(row.locator(".status")).to_have_text("在售")
    assert backend.call("GET", f"/v1/products/{item}")["id"] == item


# -- roles --------------------------------------------------------------------------------------

ADMIN_ONLY = {"categories": "商城分类", "home": "首页运营", "points": "积分规则",
              "reconciliation": "对账报告"}


def test_a_merchant_cannot_open_the_admin_only_pages_nor_call_their_api(console, page, backend):
    staff = backend.make_staff("merchant")
    sign_in_page(page, console.base_url, staff["login"], PASSWORD)
    nav = page.locator("#nav")
    for shown in ("优惠券", "拼团规则", "虚拟物品"):
        expect(nav).to_contain_text(shown)
    for path, title in ADMIN_ONLY.items():
        expect(nav).not_to_contain_text(title)
        page.goto(f"{console.base_url}/console#/{path}")
        expect(page.get_by_role("heading", name="无权访问")).to_be_visible()
    # The page's own session, with its CSRF token, as a typed fetch would send it.
    statuses = page.evaluate("""async () => {
        const csrf = (await (await fetch('/v1/console/sessions')).json()).data.csrf_token;
        const call = async (method, path, body) => (await fetch(path, { method,
            headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
            body: body && JSON.stringify(body) })).status;
        return [
            await call('GET', '/v1/admin/categories'),
            await call('POST', '/v1/admin/categories', { name: '越权分类' }),
            await call('GET', '/v1/admin/home/banners'),
            await call('POST', '/v1/admin/home/banners', { image_url: 'https://x.example/a.jpg' }),
            await call('PUT', '/v1/admin/home/slots/hot', { product_ids: [] }),
            await call('GET', '/v1/admin/points/rules'),
            await call('PUT', '/v1/admin/points/rules', { checkin_points: 99999 }),
            await call('GET', '/v1/admin/payments/reconciliations'),
            await call('POST', '/v1/admin/points/reconciliations'),
            await call('GET', '/v1/admin/stats/daily?from=2026-01-01&to=2026-01-02'),
            await call('GET', '/v1/admin/stats/daily.csv?from=2026-01-01&to=2026-01-02'),
            await call('POST', '/v1/admin/products/1/approve'),
        ];
    }""")
    assert statuses == [403] * 12
    assert backend.call("GET", "/v1/admin/points/rules",
                        token=admin_token(backend))["checkin_points"] != 99999

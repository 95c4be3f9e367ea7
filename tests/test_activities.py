"""Activities with registration against real MariaDB: organisers create and publish, users
register (capacity never exceeded under concurrency, the waitlist promoted when a seat
frees, an Idempotency-Key retry answering the first), cancel, pay in points and get them
back; staff check registrants in by code; merchants never see each other's activities; and
every bad input is refused with its code and field."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update

from models.activities import Activity
from models.base import utcnow
from models.platform import AuditEntry
from pawhome.activities import organising
from tests.activities_support import (
    ANSWERS,
    PHONE_FORM,
    activity_body,
    activity_notifications,
    activity_row,
    create,
    key,
    later,
    organiser,
    published,
    register,
    registrations_of,
)
from tests.mall_support import make_member
from tests.points_support import give_points


@pytest.mark.gen_test(timeout=60)
async def test_an_activity_goes_from_draft_to_published_and_a_registrant_is_checked_in_by_code(
        api, resources):
    merchant = await organiser(resources)
    draft = await create(api, merchant, form_fields=PHONE_FORM)
    assert (draft["status"], draft["seats_left"], draft["organiser"]["merchant_id"]) == (
        "draft", 5, merchant.user_id)
    assert draft["organiser"]["name"] not in ("", "PAWHome 官方")  # the shop, or its nickname
    assert draft["cover"]["url"] == "https://img.example.com/a.jpg"
    (await api.get(f"/v1/activities/{draft['id']}")).error(404, code=40410)
    user = await make_member(resources)
    (await register(api, user, draft["id"], ANSWERS)).error(404, code=40410)

    shown = (await api.post(f"/v1/merchant/activities/{draft['id']}/publish",
                            token=merchant.token)).ok()
    assert shown["status"] == "published" and shown["registration_open"] is True
    assert [e["action"] for e in shown["timeline"]] == ["create", "publish"]
    listed = (await api.get("/v1/activities?limit=100")).ok()
    assert draft["id"] in [a["id"] for a in listed["items"]]
    near = (await api.get("/v1/activities?lat=22.52&lng=113.96&radius_km=5&limit=100")).ok()
    mine = next(a for a in near["items"] if a["id"] == draft["id"])
    assert 0 < mine["distance_km"] < 5
    far = (await api.get("/v1/activities?lat=39.9&lng=116.4&radius_km=5&limit=100")).ok()
    assert draft["id"] not in [a["id"] for a in far["items"]]
    (await api.get("/v1/activities?lat=22.5")).error(422, code=42290, field="lng")

    made = (await register(api, user, draft["id"], ANSWERS)).ok(201)
    assert (made["status"], made["payment_status"]) == ("confirmed", "none")
    assert made["answers"] == ANSWERS and len(made["check_in_code"]) == 8
    page = (await api.get(f"/v1/activities/{draft['id']}", token=user.token)).ok()
    assert page["my_registration"]["id"] == made["id"] and page["seats_left"] == 4
    assert (await api.get("/v1/activity-registrations", token=user.token)).ok()["items"][0][
        "activity"]["id"] == draft["id"]

    listed = (await api.get(f"/v1/merchant/activities/{draft['id']}/registrations",
                            token=merchant.token)).ok()
    assert [(r["id"], r["answers"]["phone"]) for r in listed["items"]] == [
        (made["id"], "13800138000")]
    typed = made["check_in_code"].lower()[:4] + "-" + made["check_in_code"].lower()[4:]
    (await api.post(f"/v1/merchant/activities/{draft['id']}/check-ins",
                    json={"code": "ZZZZZZZZ"}, token=merchant.token)).error(404, code=40412)
    done = (await api.post(f"/v1/merchant/activities/{draft['id']}/check-ins",
                           json={"code": typed}, token=merchant.token)).ok()
    assert (done["id"], done["status"]) == (made["id"], "checked_in")
    again = (await api.post(f"/v1/merchant/activities/{draft['id']}/check-ins",
                            json={"code": made["check_in_code"]}, token=merchant.token))
    assert again.error(409, code=40998)["data"]["id"] == made["id"]
    assert (await activity_row(resources, draft["id"])).checked_in == 1
    detail = (await api.get(f"/v1/activity-registrations/{made['id']}", token=user.token)).ok()
    assert [e["action"] for e in detail["timeline"]] == ["register", "check_in"]


@pytest.mark.gen_test(timeout=60)
async def test_bad_terms_and_bad_answers_are_refused_with_their_fields(api, resources):
    merchant = await organiser(resources)
    post = "/v1/merchant/activities"

    async def refused(status, code, field, **overrides):
        (await api.post(post, json=activity_body(**overrides), token=merchant.token)).error(
            status, code=code, field=field)

    await refused(422, 42290, "registration_closes_at", registration_closes_at=later(days=4))
    await refused(422, 42290, "end_at", end_at=later(days=2))
    await refused(422, 42290, "start_at", start_at=later(days=-1), end_at=later(hours=1))
    await refused(422, 42290, "registration_opens_at", registration_opens_at=later(days=2),
                  registration_closes_at=later(days=1))
    await refused(422, 42290, "cancel_deadline_at", cancel_deadline_at=later(days=5))
    await refused(422, None, "capacity", capacity=0)
    await refused(422, None, "capacity", capacity=-3)
    await refused(422, None, "form_fields.0.type",
                  form_fields=[{"key": "x", "label": "X", "type": "colour"}])
    await refused(422, 42290, "form_fields.0.options",
                  form_fields=[{"key": "x", "label": "X", "type": "choice"}])
    await refused(422, 42290, "form_fields.1.key",
                  form_fields=[{"key": "x", "label": "X", "type": "text"},
                               {"key": "x", "label": "Y", "type": "text"}])
    await refused(422, 42290, "price", price_type="free", price=100)
    await refused(422, 42290, "price", price_type="cash", price=0)
    await refused(422, 42290, "cover_url", cover_media_id=1)
    await refused(422, 42200, "cover_media_id.0", cover_media_id=10**12, cover_url="")

    activity = await published(api, merchant, form_fields=PHONE_FORM)
    user = await make_member(resources)
    (await register(api, user, activity["id"], {"pet_name": "旺财"})).error(
        422, code=42291, field="answers.phone")
    reply = await register(api, user, activity["id"], {**ANSWERS, "phone": "12345"})
    body = reply.error(422, code=42291, field="answers.phone")
    assert "12345" not in str(body)  # the answer itself is never echoed
    (await register(api, user, activity["id"], {**ANSWERS, "size": "超大"})).error(
        422, code=42291, field="answers.size")
    (await register(api, user, activity["id"], {**ANSWERS, "colour": "红"})).error(
        422, code=42291, field="answers.colour")
    assert await registrations_of(resources, activity["id"]) == []

    # Closed window, cancelled activity, someone else's registration.
    made = (await register(api, user, activity["id"], ANSWERS)).ok(201)
    stranger = await make_member(resources)
    (await api.get(f"/v1/activity-registrations/{made['id']}", token=stranger.token)).error(
        404, code=40411)
    (await api.post(f"/v1/activity-registrations/{made['id']}/cancel", json={},
                    token=stranger.token, headers=key())).error(404, code=40411)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Activity).where(Activity.id == activity["id"]).values(
            registration_closes_at=utcnow() - dt.timedelta(seconds=1)))
    (await register(api, stranger, activity["id"], ANSWERS)).error(409, code=40993)
    other = await published(api, merchant)
    (await api.post(f"/v1/merchant/activities/{other['id']}/cancel", json={"reason": "下雨"},
                    token=merchant.token, headers=key())).ok()
    (await register(api, stranger, other["id"])).error(409, code=40993)
    (await api.post(f"/v1/merchant/activities/{other['id']}/publish",
                    token=merchant.token)).error(409, code=40992)
    (await api.request("PATCH", f"/v1/merchant/activities/{other['id']}",
                       json={"title": "改"}, token=merchant.token)).error(409, code=40992)


@pytest.mark.gen_test(timeout=60)
async def test_a_merchant_never_sees_nor_changes_another_merchants_activity_even_by_id(
        api, resources):
    owner, rival = await organiser(resources), await organiser(resources)
    admin = await organiser(resources, "admin")
    activity = await published(api, owner)
    user = await make_member(resources)
    made = (await register(api, user, activity["id"])).ok(201)
    base = f"/v1/merchant/activities/{activity['id']}"
    for reply in [
        await api.get(base, token=rival.token),
        await api.request("PATCH", base, json={"title": "抢走"}, token=rival.token),
        await api.post(base + "/publish", token=rival.token),
        await api.post(base + "/cancel", json={}, token=rival.token, headers=key()),
        await api.get(base + "/registrations", token=rival.token),
        await api.post(base + "/check-ins", json={"code": made["check_in_code"]},
                       token=rival.token),
    ]:
        reply.error(404, code=40410)
    theirs = (await api.get("/v1/merchant/activities?limit=100", token=rival.token)).ok()
    assert activity["id"] not in [a["id"] for a in theirs["items"]]
    ours = (await api.get("/v1/merchant/activities?limit=100", token=owner.token)).ok()
    assert [a["id"] for a in ours["items"]] == [activity["id"]]
    (await api.get(base, token=user.token)).error(403)
    # Admins see and run every activity; theirs are the platform's own.
    assert (await api.get(base + "/registrations", token=admin.token)).ok()["total"] == 1
    platform = await published(api, admin)
    assert platform["organiser"] == {"merchant_id": None, "name": "PAWHome 官方"}
    (await api.get(f"/v1/merchant/activities/{platform['id']}", token=owner.token)).error(
        404, code=40410)
    assert (await activity_row(resources, activity["id"])).title == activity["title"]


@pytest.mark.gen_test(timeout=120)
async def test_many_concurrent_registrations_take_exactly_the_capacity(api, resources):
    merchant = await organiser(resources)
    full = await published(api, merchant, capacity=3)
    people = await asyncio.gather(*[make_member(resources) for _ in range(24)])
    replies = await asyncio.gather(*[register(api, p, full["id"]) for p in people])
    statuses = sorted(r.status for r in replies)
    assert statuses == [201] * 3 + [409] * 21
    assert {r.json["code"] for r in replies if r.status == 409} == {40994}
    rows = await registrations_of(resources, full["id"])
    assert sorted(r.status for r in rows) == ["confirmed"] * 3
    assert (await activity_row(resources, full["id"])).seats_taken == 3

    # With a waitlist: the seats, then everyone else waits in the order they came.
    queued = await published(api, merchant, capacity=3, waitlist_enabled=True)
    replies = await asyncio.gather(*[register(api, p, queued["id"]) for p in people[:12]])
    assert [r.status for r in replies] == [201] * 12
    rows = await registrations_of(resources, queued["id"])
    assert sorted(r.status for r in rows) == ["confirmed"] * 3 + ["waitlisted"] * 9
    row = await activity_row(resources, queued["id"])
    assert (row.seats_taken, row.waitlisted) == (3, 9)


@pytest.mark.gen_test(timeout=60)
async def test_a_retried_registration_answers_the_first_and_a_second_one_is_refused(
        api, resources):
    activity = await published(api, await organiser(resources))
    user = await make_member(resources)
    same = key()
    first = await register(api, user, activity["id"], headers=same)
    again = await register(api, user, activity["id"], headers=same)
    assert first.ok(201)["id"] == again.ok(201)["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = (await register(api, user, activity["id"])).error(409, code=40995)
    assert other["data"]["id"] == first.json["data"]["id"]
    assert len(await registrations_of(resources, activity["id"])) == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_freed_seat_goes_to_the_oldest_waitlisted_who_is_told(api, resources):
    activity = await published(api, await organiser(resources), capacity=1,
                               waitlist_enabled=True)
    first, second, third = [await make_member(resources) for _ in range(3)]
    seated = (await register(api, first, activity["id"])).ok(201)
    waiting = (await register(api, second, activity["id"])).ok(201)
    behind = (await register(api, third, activity["id"])).ok(201)
    assert (seated["status"], waiting["status"], behind["status"]) == (
        "confirmed", "waitlisted", "waitlisted")
    assert (waiting["waitlist_position"], behind["waitlist_position"]) == (1, 2)
    left = (await api.post(f"/v1/activity-registrations/{seated['id']}/cancel",
                           json={"reason": "有事"}, token=first.token, headers=key())).ok()
    assert left["status"] == "cancelled"
    promoted = (await api.get(f"/v1/activity-registrations/{waiting['id']}",
                              token=second.token)).ok()
    assert promoted["status"] == "confirmed"
    assert [e["action"] for e in promoted["timeline"]] == ["register", "promote"]
    told = await activity_notifications(resources, second.user_id)
    assert [n.kind for n in told] == ["waitlist_promoted"]
    still = (await api.get(f"/v1/activity-registrations/{behind['id']}",
                           token=third.token)).ok()
    assert (still["status"], still["waitlist_position"]) == ("waitlisted", 1)
    row = await activity_row(resources, activity["id"])
    assert (row.seats_taken, row.waitlisted) == (1, 1)
    # Cancelled, the first may register again: behind the waitlist now.
    again = (await register(api, first, activity["id"])).ok(201)
    assert again["status"] == "waitlisted" and again["id"] != seated["id"]


@pytest.mark.gen_test(timeout=60)
async def test_points_are_taken_on_registering_and_returned_on_cancelling(api, resources):
    activity = await published(api, await organiser(resources), price_type="points",
                               price=100)
    user, poor = await make_member(resources), await make_member(resources)
    await give_points(resources, user.user_id, 150)
    await give_points(resources, poor.user_id, 50)
    made = (await register(api, user, activity["id"])).ok(201)
    assert (made["status"], made["payment_status"], made["amount"]) == ("confirmed", "paid", 100)
    assert (await api.get("/v1/points", token=user.token)).ok()["balance"] == 50
    (await register(api, poor, activity["id"])).error(422, code=42230)
    assert (await api.get("/v1/points", token=poor.token)).ok()["balance"] == 50
    done = (await api.post(f"/v1/activity-registrations/{made['id']}/cancel", json={},
                           token=user.token, headers=key())).ok()
    assert done["payment_status"] == "refunded"
    assert (await api.get("/v1/points", token=user.token)).ok()["balance"] == 150
    # Too late: past the cancel deadline a seat is kept (and paid for).
    again = (await register(api, user, activity["id"])).ok(201)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Activity).where(Activity.id == activity["id"]).values(
            cancel_deadline_at=utcnow() - dt.timedelta(seconds=1)))
    (await api.post(f"/v1/activity-registrations/{again['id']}/cancel", json={},
                    token=user.token, headers=key())).error(409, code=40997)


@pytest.mark.gen_test(timeout=60)
async def test_editing_keeps_the_paid_terms_once_people_registered_and_more_seats_promote(
        api, resources):
    merchant = await organiser(resources)
    activity = await published(api, merchant, capacity=1, waitlist_enabled=True)
    path = f"/v1/merchant/activities/{activity['id']}"
    first, second = await make_member(resources), await make_member(resources)
    (await register(api, first, activity["id"])).ok(201)
    waiting = (await register(api, second, activity["id"])).ok(201)
    (await api.request("PATCH", path, json={"price_type": "points", "price": 10},
                       token=merchant.token)).error(409, code=40999, field="price_type")
    (await api.request("PATCH", path, json={"form_fields": PHONE_FORM},
                       token=merchant.token)).error(409, code=40999, field="form_fields")
    (await api.request("PATCH", path, json={"end_at": later(days=1)},
                       token=merchant.token)).error(422, code=42290, field="end_at")
    changed = (await api.request("PATCH", path, json={"capacity": 2, "title": "扩容了"},
                                 token=merchant.token)).ok()
    assert (changed["title"], changed["seats_taken"], changed["waitlisted"]) == ("扩容了", 2, 0)
    assert (await api.get(f"/v1/activity-registrations/{waiting['id']}",
                          token=second.token)).ok()["status"] == "confirmed"
    (await api.request("PATCH", path, json={"capacity": 1}, token=merchant.token)).error(
        409, code=40999, field="capacity")


@pytest.mark.gen_test(timeout=60)
async def test_a_registrants_phone_is_never_logged(api, resources, access_lines, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    merchant = await organiser(resources)
    activity = await published(api, merchant, form_fields=PHONE_FORM)
    user = await make_member(resources)
    (await register(api, user, activity["id"], {**ANSWERS, "phone": "19912345678x"})).error(
        422, code=42291, field="answers.phone")
    made = (await register(api, user, activity["id"], {**ANSWERS, "phone": "19912345678"})).ok(
        201)
    (await api.get(f"/v1/merchant/activities/{activity['id']}/registrations",
                   token=merchant.token)).ok()
    (await api.post(f"/v1/merchant/activities/{activity['id']}/check-ins",
                    json={"code": made["check_in_code"]}, token=merchant.token)).ok()
    lines = access_lines()
    assert any("/registrations" in str(line) for line in lines)
    assert "19912345678" not in str(lines)
    assert "19912345678" not in caplog.text


@pytest.mark.gen_test(timeout=60)
async def test_a_listed_word_in_the_organisers_text_is_refused_by_field_and_nothing_changes(
        api, resources):
    merchant = await organiser(resources)
    post = "/v1/merchant/activities"
    for field, overrides in [
        ("title", {"title": "周末赌博局"}),
        ("description", {"description": "现场有 毒 品 交易"}),  # spaced out: still found
        ("place_name", {"place_name": "網路賭博中心"}),  # traditional characters fold
        ("place_address", {"place_address": "深圳市 冰毒 路"}),
        ("form_fields.0.label", {"form_fields": [{"key": "x", "label": "约炮", "type": "text"}]}),
        ("form_fields.1.options.1", {"form_fields": [
            {"key": "x", "label": "宠物名", "type": "text"},
            {"key": "y", "label": "想吃", "type": "choice", "options": ["狗粮", "狗肉"]}]}),
    ]:
        (await api.post(post, json=activity_body(**overrides), token=merchant.token)).error(
            422, code=42202, field=field)
    assert (await api.get(post, token=merchant.token)).ok()["total"] == 0

    activity = await published(api, merchant, form_fields=PHONE_FORM)
    path = f"{post}/{activity['id']}"
    for field, change in [("title", {"title": "赌博之夜"}),
                          ("description", {"title": "干净的标题", "description": "提供裸聊"}),
                          ("place_name", {"place_name": "枪支市场",
                                          "start_at": later(days=6),
                                          "end_at": later(days=6, hours=1)})]:
        (await api.request("PATCH", path, json=change, token=merchant.token)).error(
            422, code=42202, field=field)
    back = (await api.get(path, token=merchant.token)).ok()
    assert (back["title"], back["description"], back["place"]["name"], back["start_at"]) == (
        activity["title"], activity["description"], activity["place"]["name"],
        activity["start_at"])
    assert [e["action"] for e in back["timeline"]] == ["create", "publish"]
    # A soft-listed word is allowed and kept in the audit entry.
    soft = (await api.request("PATCH", path, json={"description": "详情私聊我"},
                              token=merchant.token)).ok()
    assert soft["description"] == "详情私聊我"
    async with resources.db.session() as session:
        afters = list((await session.execute(select(AuditEntry.after).where(
            AuditEntry.action == "activity.update",
            AuditEntry.target_id == str(activity["id"])))).scalars())
    assert [a.get("soft_words") for a in afters] == [["私聊我"]]
    # Registrants are shown a cancellation's reason: a listed word in it is refused too.
    (await api.post(f"{path}/cancel", json={"reason": "赌博被查"}, token=merchant.token,
                    headers=key())).error(422, code=42202, field="reason")
    assert (await activity_row(resources, activity["id"])).status == "published"


@pytest.mark.gen_test(timeout=60)
async def test_live_registrants_are_told_once_of_a_new_time_and_place_and_nobody_of_a_typo(
        api, resources):
    merchant = await organiser(resources)
    activity = await published(api, merchant, capacity=1, waitlist_enabled=True)
    path = f"/v1/merchant/activities/{activity['id']}"
    seated, waiting, leaving = [await make_member(resources) for _ in range(3)]
    (await register(api, seated, activity["id"])).ok(201)
    queued = (await register(api, waiting, activity["id"])).ok(201)
    gone = (await register(api, leaving, activity["id"])).ok(201)
    (await api.post(f"/v1/activity-registrations/{gone['id']}/cancel", json={},
                    token=leaving.token, headers=key())).ok()

    change = {"start_at": later(days=5), "end_at": later(days=5, hours=2),
              "place_name": "莲花山公园", "place_address": "深圳市福田区红荔路"}
    changed = (await api.request("PATCH", path, json=change, token=merchant.token)).ok()
    assert changed["place"]["name"] == "莲花山公园"
    assert changed["start_at"] != activity["start_at"]
    assert [(e["action"], e["reason"]) for e in changed["timeline"]][-1] == (
        "change", "start_at,end_at,place_name,place_address")
    for user in (seated, waiting):
        told = [n for n in await activity_notifications(resources, user.user_id)
                if n.kind == "activity_changed"]
        assert len(told) == 1, user
        assert "莲花山公园" in told[0].payload["text"]
        assert changed["start_at"][:16] in told[0].payload["text"]
        assert told[0].payload["start_at"] == changed["start_at"]
    assert await activity_notifications(resources, leaving.user_id) == []
    mine = (await api.get(f"/v1/activity-registrations/{queued['id']}",
                          token=waiting.token)).ok()
    assert [e["action"] for e in mine["timeline"]] == ["register", "change"]
    # The queued task (a rerun) tells nobody again; nor does one after a later registrant.
    late = await make_member(resources)
    (await register(api, late, activity["id"])).ok(201)
    assert await organising.tell_changed(resources, activity["id"]) == 0

    async def told_count() -> int:
        kinds = [n.kind for u in (seated, waiting, leaving, late)
                 for n in await activity_notifications(resources, u.user_id)]
        return kinds.count("activity_changed")

    assert await told_count() == 2
    # A typo fixed, the same time and place sent again: nobody is told, no change recorded.
    (await api.request("PATCH", path, json={"description": "带上牵引绳"},
                       token=merchant.token)).ok()
    again = (await api.request("PATCH", path, json=change, token=merchant.token)).ok()
    assert [e["action"] for e in again["timeline"]].count("change") == 1
    assert await organising.tell_changed(resources, activity["id"]) == 0
    assert await told_count() == 2
    # A new cancel deadline matters: everyone live is told, once more each.
    (await api.request("PATCH", path, json={"cancel_deadline_at": later(days=2)},
                       token=merchant.token)).ok()
    assert await told_count() == 5

    # A draft has nobody to tell: its change is not recorded as one.
    draft = await create(api, merchant)
    edited = (await api.request("PATCH", f"/v1/merchant/activities/{draft['id']}",
                                json={"place_name": "别处"}, token=merchant.token)).ok()
    assert [e["action"] for e in edited["timeline"]] == ["create"]

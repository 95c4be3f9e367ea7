"""Appointment reviews: the user reviews a completed appointment once, moderation publishes it,
the provider's and the staff members' ratings stay exactly those of the visible reviews (also
when many are published at once, held, taken down and restored), the public lists page and
filter, the provider's owner replies once; and the refusals: someone else's appointment, one
not completed, twice, bad bodies."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from models.booking import Provider, Staff
from models.booking_reviews import AppointmentReview
from pawhome.moderation import appointment_reviews
from pawhome.moderation import reviews as moderation
from tests.booking_support import at, book, make_provider, pet_owner, tomorrow
from tests.catalogue_support import ready_media
from tests.mall_support import make_member
from tests.test_moderation import status_of
from tests.test_product_reviews import notifications_of


async def completed_appointments(api, resources, count: int = 1, staff: int = 1):
    """A provider with `staff` groomers and `count` appointments of it, each of another user,
    booked through the API tomorrow from 09:00 hourly (round the staff), checked in and
    completed by the merchant. Returns the provider set-up and [(user, appointment id)]."""
    shop = await make_provider(api, resources, staff=staff)
    done = []
    for n in range(count):
        user, pet_id = await pet_owner(resources)
        booked = await book(api, user, pet_id, shop["service"]["id"],
                            at(tomorrow(), f"{9 + n // staff:02d}:00"),
                            shop["staff"][n % staff])
        for action in ("check_in", "complete"):
            (await api.post(f"/v1/merchant/appointments/{booked['id']}/actions",
                            token=shop["merchant"].token, json={"action": action})).ok()
        done.append((user, booked["id"]))
    return shop, done


def review_path(appointment_id: int) -> str:
    return f"/v1/appointments/{appointment_id}/reviews"


async def reviews_of(resources, appointment_ids: list[int]) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(AppointmentReview)
                                           .where(AppointmentReview.appointment_id.in_(
                                               appointment_ids)))).scalar_one())


async def assert_ratings_exact(resources, provider_id: int) -> None:
    """The invariant: the provider's and each staff member's count and sum are exactly
    those of the visible reviews."""
    async with resources.db.session() as session:
        provider = await session.get(Provider, provider_id)
        staff = list((await session.execute(select(Staff).where(
            Staff.provider_id == provider_id))).scalars())
        visible = list((await session.execute(select(AppointmentReview).where(
            AppointmentReview.provider_id == provider_id,
            AppointmentReview.status == "visible"))).scalars())
    assert (provider.rating_count, provider.rating_sum) == \
        (len(visible), sum(r.rating for r in visible))
    for member in staff:
        theirs = [r.rating for r in visible if r.staff_id == member.id]
        assert (member.rating_count, member.rating_sum) == (len(theirs), sum(theirs)), member.id


@pytest.mark.gen_test(timeout=90)
async def test_a_review_counts_for_provider_and_groomer_once_moderation_publishes_it(
        api, resources, wechat):
    shop, [(user, appointment_id)] = await completed_appointments(api, resources)
    provider_id, staff_id = shop["provider"]["id"], shop["staff"][0]
    page = (await api.get(f"/v1/providers/{provider_id}")).ok()  # fills the cached page
    assert page["rating"] == {"count": 0, "average": None}
    photo = await ready_media(resources, user.user_id)
    review = (await api.post(review_path(appointment_id), token=user.token, json={
        "rating": 4, "text": "洗得很干净，美容师很耐心", "media_ids": [photo]})).ok(201)
    assert review["status"] == "pending" and review["rating"] == 4
    assert review["appointment_id"] == appointment_id and review["staff_id"] == staff_id
    detail = (await api.get(f"/v1/appointments/{appointment_id}", token=user.token)).ok()
    assert detail["reviewed"] is True and detail["review"]["id"] == review["id"]
    # A test worker of this session may run the queued moderation at any moment: what the
    # listing must show depends on the review's status on both sides of it.
    before = await status_of(resources, AppointmentReview, review["id"])
    listed = (await api.get(f"/v1/providers/{provider_id}/reviews")).ok()
    after = await status_of(resources, AppointmentReview, review["id"])
    if after == "pending":  # pending all through the listing: not published yet
        assert listed["items"] == [] and listed["summary"]["count"] == 0
    elif before == "visible":  # published before the listing began: it is listed
        assert [r["id"] for r in listed["items"]] == [review["id"]]
    else:  # published while the listing ran: either answer is right, nothing else is
        assert [r["id"] for r in listed["items"]] in ([], [review["id"]])

    assert await appointment_reviews.review_appointment_review(resources, review["id"]) == \
        "visible"

    listed = (await api.get(f"/v1/providers/{provider_id}/reviews")).ok()
    [shown] = listed["items"]
    assert shown["id"] == review["id"] and len(shown["images"]) == 1
    assert shown["author"]["id"] == user.user_id and "status" not in shown
    assert listed["summary"] == {"count": 1, "average": 4.0, "with_images": 1,
                                 "stars": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}}
    page = (await api.get(f"/v1/providers/{provider_id}")).ok()  # the cached page was dropped
    assert page["rating"] == {"count": 1, "average": 4.0}
    assert page["staff"][0]["rating"] == {"count": 1, "average": 4.0}
    services = (await api.get("/v1/services?sort=rating&limit=100")).ok()["items"]
    mine = [s for s in services if s["provider"]["id"] == provider_id]
    assert mine and mine[0]["provider"]["rating"] == {"count": 1, "average": 4.0}
    staff_list = (await api.get(f"/v1/staff/{staff_id}/reviews")).ok()
    assert [r["id"] for r in staff_list["items"]] == [review["id"]]
    assert staff_list["summary"]["count"] == 1
    # The provider's owner is told, and sees it in the appointment's detail.
    told = await notifications_of(resources, shop["merchant"].user_id, "review_received")
    assert [(n.category, n.target_id) for n in told] == [("appointment", review["id"])]
    seen = (await api.get(f"/v1/appointments/{appointment_id}",
                          token=shop["merchant"].token)).ok()
    assert seen["review"]["id"] == review["id"] and seen["review"]["status"] == "visible"
    # Someone the author blocked does not see it; a stranger does.
    stranger, blocked = await api.login(), await api.login()
    (await api.post("/v1/users/me/blocks", json={"user_id": blocked.user_id},
                    token=user.token)).ok()
    for who, expected in ((stranger, [review["id"]]), (blocked, [])):
        seen = (await api.get(f"/v1/providers/{provider_id}/reviews", token=who.token)).ok()
        assert [r["id"] for r in seen["items"]] == expected
    mine = (await api.get("/v1/appointment-reviews", token=user.token)).ok()
    assert [(r["id"], r["status"]) for r in mine["items"]] == [(review["id"], "visible")]
    await assert_ratings_exact(resources, provider_id)


@pytest.mark.gen_test(timeout=90)
async def test_others_unfinished_appointments_and_bad_bodies_are_refused_unchanged(
        api, resources, wechat):
    shop, [(user, appointment_id)] = await completed_appointments(api, resources)
    other, pet_id = await pet_owner(resources)
    upcoming = await book(api, other, pet_id, shop["service"]["id"],
                          at(tomorrow(), "15:00"), shop["staff"][0])
    ok_body = {"rating": 5, "text": "很好"}
    path = review_path(appointment_id)
    (await api.post(path, token=other.token, json=ok_body)).error(404)
    (await api.post(path, token=shop["merchant"].token, json=ok_body)).error(404)
    (await api.post(review_path(999_999_999), token=user.token, json=ok_body)).error(404)
    (await api.post(review_path(upcoming["id"]), token=other.token, json=ok_body)) \
        .error(409, code=40986, field="status")
    theirs = await ready_media(resources, other.user_id)
    (await api.post(path, token=user.token, json={**ok_body, "media_ids": [theirs]})) \
        .error(422, field="media_ids.0")
    many = [await ready_media(resources, user.user_id) for _ in range(10)]
    (await api.post(path, token=user.token, json={**ok_body, "media_ids": many})).error(422)
    for rating in (0, 6, "five"):
        (await api.post(path, token=user.token, json={**ok_body, "rating": rating})) \
            .error(422, field="rating")
    (await api.post(path, token=user.token, json={**ok_body, "text": "好" * 501})) \
        .error(422, field="text")
    (await api.post(path, token=user.token, json={**ok_body, "text": "一起来网赌"})) \
        .error(422, code=42202, field="text")
    (await api.post(path, token=user.token, json={**ok_body, "stars": 5})).error(422)
    (await api.post(path, json=ok_body)).error(401)
    assert await reviews_of(resources, [appointment_id, upcoming["id"]]) == 0
    detail = (await api.get(f"/v1/appointments/{appointment_id}", token=user.token)).ok()
    assert detail["reviewed"] is False and detail["review"] is None


@pytest.mark.gen_test(timeout=90)
async def test_a_second_review_is_refused_and_ten_submits_at_once_make_one(
        api, resources, wechat):
    _, [(user, appointment_id)] = await completed_appointments(api, resources)
    body = {"rating": 5, "text": "下次还来"}
    replies = await asyncio.gather(*[
        api.post(review_path(appointment_id), token=user.token, json=body) for _ in range(10)])
    assert sorted(r.status for r in replies) == [201] + [409] * 9
    for reply in replies:
        if reply.status == 409:
            reply.error(409, code=40987)
    assert await reviews_of(resources, [appointment_id]) == 1
    (await api.post(review_path(appointment_id), token=user.token, json=body)) \
        .error(409, code=40987, field="appointment_id")


@pytest.mark.gen_test(timeout=120)
async def test_eight_published_at_once_add_up_and_taking_down_and_restoring_stays_exact(
        api, resources, wechat):
    shop, done = await completed_appointments(api, resources, count=8, staff=2)
    provider_id = shop["provider"]["id"]
    ratings = [5, 5, 4, 3, 2, 1, 5, 4]
    ids = []
    for (user, appointment_id), rating in zip(done, ratings, strict=True):
        media = [await ready_media(resources, user.user_id)] if rating == 5 else []
        ids.append((await api.post(review_path(appointment_id), token=user.token, json={
            "rating": rating, "text": f"{rating} 星", "media_ids": media})).ok(201)["id"])
    outcomes = await asyncio.gather(*[
        appointment_reviews.review_appointment_review(resources, i) for i in ids])
    assert outcomes == ["visible"] * 8
    await assert_ratings_exact(resources, provider_id)
    base = f"/v1/providers/{provider_id}/reviews"
    first = (await api.get(base + "?limit=3")).ok()
    assert first["total"] == 8 and first["totalPages"] == 3
    assert first["summary"] == {"count": 8, "average": 3.62, "with_images": 3,
                                "stars": {"1": 1, "2": 1, "3": 1, "4": 2, "5": 3}}
    pages = [first] + [(await api.get(base + f"?limit=3&page={n}")).ok() for n in (2, 3)]
    assert [r["id"] for p in pages for r in p["items"]] == ids[::-1]  # newest first, once
    assert {r["id"] for r in (await api.get(base + "?rating=5")).ok()["items"]} == \
        {ids[0], ids[1], ids[6]}
    assert (await api.get(base + "?with_images=true")).ok()["total"] == 3
    (await api.get(base + "?rating=9")).error(422, field="rating")
    (await api.get("/v1/providers/999999999/reviews")).error(404)
    (await api.get("/v1/staff/999999999/reviews")).error(404)

    # An admin takes five down at once, then restores them at once: exact throughout.
    admin = await make_member(resources, "admin")
    taken = await asyncio.gather(*[api.post(f"/v1/admin/appointment-reviews/{i}/reject",
                                            token=admin.token, json={"reason": "广告"})
                                   for i in ids[:5]])
    assert [r.ok()["status"] for r in taken] == ["removed"] * 5
    await assert_ratings_exact(resources, provider_id)
    assert (await api.get(f"/v1/providers/{provider_id}")).ok()["rating"] == \
        {"count": 3, "average": 3.33}
    assert await notifications_of(resources, done[0][0].user_id, "booking.review_removed")
    (await api.post(f"/v1/admin/appointment-reviews/{ids[0]}/reject", token=admin.token,
                    json={"reason": "again"})).error(409, code=40989)
    (await api.post(f"/v1/admin/appointment-reviews/{ids[0]}/approve",
                    token=shop["merchant"].token)).error(403)
    restored = await asyncio.gather(*[api.post(f"/v1/admin/appointment-reviews/{i}/approve",
                                               token=admin.token) for i in ids[:5]])
    assert [r.ok()["status"] for r in restored] == ["visible"] * 5
    await assert_ratings_exact(resources, provider_id)
    assert (await api.get(base)).ok()["summary"]["count"] == 8
    # The owner was told once of each, not again on restoring.
    told = await notifications_of(resources, shop["merchant"].user_id, "review_received")
    assert sorted(n.target_id for n in told) == sorted(ids)


@pytest.mark.gen_test(timeout=90)
async def test_risky_text_is_removed_and_a_soft_word_held_neither_counting(
        api, resources, wechat):
    shop, done = await completed_appointments(api, resources, count=2)
    (user_a, first), (user_b, second) = done
    risky = (await api.post(review_path(first), token=user_a.token, json={
        "rating": 1, "text": "FAKE_RISKY 内容"})).ok(201)
    held = (await api.post(review_path(second), token=user_b.token, json={
        "rating": 1, "text": "有问题加微信"})).ok(201)
    assert await appointment_reviews.review_appointment_review(resources, risky["id"]) == \
        "removed"
    assert await appointment_reviews.review_appointment_review(resources, held["id"]) == \
        "hidden"
    listed = (await api.get(f"/v1/providers/{shop['provider']['id']}/reviews")).ok()
    assert listed["items"] == [] and listed["summary"]["count"] == 0
    [mine] = (await api.get("/v1/appointment-reviews", token=user_a.token)).ok()["items"]
    assert mine["status"] == "removed" and mine["status_reason"]
    # The owner does not see a review that is not published.
    detail = (await api.get(f"/v1/appointments/{second}", token=shop["merchant"].token)).ok()
    assert detail["review"] is None
    await assert_ratings_exact(resources, shop["provider"]["id"])


@pytest.mark.gen_test(timeout=90)
async def test_the_owner_replies_once_and_an_anonymous_reviewer_stays_hidden(
        api, resources, wechat):
    shop, [(user, appointment_id)] = await completed_appointments(api, resources)
    merchant = shop["merchant"]
    review = (await api.post(review_path(appointment_id), token=user.token, json={
        "rating": 3, "text": "等了一会儿", "anonymous": True})).ok(201)
    reply_path = f"/v1/merchant/appointment-reviews/{review['id']}/reply"
    (await api.post(reply_path, token=merchant.token, json={"text": "抱歉"})) \
        .error(409, code=40989)  # not published yet
    assert await appointment_reviews.review_appointment_review(resources, review["id"]) == \
        "visible"
    other_shop = await make_member(resources, "merchant")
    (await api.post(reply_path, token=other_shop.token, json={"text": "抱歉"})).error(404)
    (await api.post(reply_path, token=user.token, json={"text": "抱歉"})).error(403)
    (await api.post(reply_path, token=merchant.token, json={"text": " "})).error(422)
    replies = await asyncio.gather(*[api.post(reply_path, token=merchant.token,
                                              json={"text": f"感谢反馈 {n}"})
                                     for n in range(3)])
    assert sorted(r.status for r in replies) == [200, 409, 409]
    replied = next(r.ok() for r in replies if r.status == 200)
    assert replied["reply"]["text"].startswith("感谢反馈")
    assert replied["author"]["id"] is None  # the owner does not learn who it was
    (await api.post(reply_path, token=merchant.token, json={"text": "再回复"})) \
        .error(409, code=40988)
    told = await notifications_of(resources, user.user_id, "review_replied")
    assert [(n.category, n.target_id) for n in told] == [("appointment", review["id"])]
    shown = (await api.get(f"/v1/providers/{shop['provider']['id']}/reviews")).ok()["items"][0]
    assert shown["author"] == {"id": None, "nickname": "匿名用户", "avatar_url": ""}
    assert shown["reply"]["text"] == replied["reply"]["text"]


@pytest.mark.gen_test(timeout=90)
async def test_a_photo_found_risky_later_takes_the_published_review_out_of_the_ratings(
        api, resources, wechat):
    shop, done = await completed_appointments(api, resources, count=2)
    provider_id = shop["provider"]["id"]
    ids, photos = [], []
    for user, appointment_id in done:
        photos.append(await ready_media(resources, user.user_id))
        ids.append((await api.post(review_path(appointment_id), token=user.token, json={
            "rating": 5, "text": "很好", "media_ids": [photos[-1]]})).ok(201)["id"])
        assert await appointment_reviews.review_appointment_review(resources, ids[-1]) == \
            "visible"
    assert (await api.get(f"/v1/providers/{provider_id}")).ok()["rating"]["count"] == 2
    await moderation.apply_media_verdict(resources, photos[0], "risky", "porn", "wechat_media")
    listed = (await api.get(f"/v1/providers/{provider_id}/reviews")).ok()
    assert [r["id"] for r in listed["items"]] == [ids[1]] and listed["summary"]["count"] == 1
    await assert_ratings_exact(resources, provider_id)
    assert await notifications_of(resources, done[0][0].user_id, "booking.review_removed")

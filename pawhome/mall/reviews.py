"""Product reviews: after an order completes, its buyer reviews each line once (a rating of 1
to 5, text, up to 9 photos, optionally anonymous); the merchant of the product (or an admin)
replies once. docs/mall.md ("Reviews").

A review is written `pending` and moderated like a post (pawhome/moderation/buyer_reviews.py
connects `review_submitted`); `set_status` is the one place its status changes. A review
counts in its product's rating — `products.rating_count` / `rating_sum` and the counts per
star (`product_rating_stats`) — exactly while it is `visible`: the transaction that publishes
it adds it, the one that holds or takes it down takes it out, each after locking the product
row, so the counts per star always equal what the public list shows.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Order, OrderItem, Product
from models.reviews import ProductRatingStats, ProductReview, ReviewColumns
from models.users import User
from pawhome.identity import users
from pawhome.mall import orders, products
from pawhome.mall.product_rendering import image_view, media_by_id
from pawhome.media.uploads import require_ready
from pawhome.messaging import notifications
from pawhome.platform.errors import (
    AlreadyReviewed,
    NotFound,
    ReviewNotAllowed,
    ReviewReplyExists,
    ValidationFailed,
    field_error,
)
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.hooks import Hook
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text
from settings import Settings

MAX_IMAGES = 9
ANONYMOUS_NAME = "匿名用户"

# Run in the transaction that writes a review, with (session, review_id): moderation
# connects its review task (pawhome/moderation/buyer_reviews.py).
review_submitted: Hook[[AsyncSession, int]] = Hook("mall.review_submitted")


class ReviewFields(BaseModel):
    """What a reviewer writes, whatever the review is of (appointment reviews too)."""
    model_config = ConfigDict(extra="forbid")
    rating: int = Field(ge=1, le=5)
    text: str = Field("", max_length=500)
    media_ids: list[int] = Field(default_factory=list, max_length=MAX_IMAGES)
    anonymous: bool = False


class ReviewBody(ReviewFields):
    item_id: int = Field(ge=1, le=2**53, description="the order line reviewed")


class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK)


class ProductReviewsQuery(PageQuery):
    rating: int | None = Field(None, ge=1, le=5, description="only reviews with this rating")
    with_images: bool = Field(False, description="only reviews with photos")


class MyReviewsQuery(PageQuery):
    pass


class SellerReviewsQuery(PageQuery):
    status: str | None = Field(None, pattern="^(pending|visible|hidden|removed)$",
                               description="admins only: merchants see visible reviews")
    replied: bool | None = None
    product_id: int | None = Field(None, ge=1, le=2**53)


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


# -- writing --------------------------------------------------------------------------------------


async def submit_review(resources: Resources, user_id: int, order_id: int,
                        body: ReviewBody) -> dict[str, Any]:
    """The buyer reviews one line of their completed order. Another user's order is 404; an
    order not completed, or a line refunded in full, 409 ReviewNotAllowed; a line reviewed
    already, 409 AlreadyReviewed (two submits at once: the order row lock queues them, and
    the unique line key backs it). The review is pending until moderation decides."""
    screen_text(body.text, "text")
    async with resources.db.session() as session, session.begin():
        order = await orders.lock_order(session, order_id)
        if order.user_id != user_id:
            raise NotFound("No such order")
        if order.status != "completed":
            raise ReviewNotAllowed(f"The order is {order.status}: only a completed order "
                                   "can be reviewed", errors=[field_error("order_id",
                                                                          order.status)])
        item = await session.get(OrderItem, body.item_id)
        if item is None or item.order_id != order.id:
            raise ValidationFailed(errors=[field_error("item_id", "not a line of this order")])
        if item.refunded_quantity >= item.quantity:
            raise ReviewNotAllowed("This line was refunded in full",
                                   errors=[field_error("item_id", "refunded")])
        if await _review_of_line(session, item.id) is not None:
            raise AlreadyReviewed(errors=[field_error("item_id", "reviewed already")])
        await require_ready(session, user_id, body.media_ids, kind="image")
        review = ProductReview(
            order_item_id=item.id, order_id=order.id, product_id=item.product_id,
            sku_id=item.sku_id, merchant_id=order.merchant_id, user_id=user_id,
            spec_text=item.spec_text, rating=body.rating, text=body.text,
            media_ids=list(body.media_ids), has_images=bool(body.media_ids),
            anonymous=body.anonymous, status="pending")
        session.add(review)
        try:
            await session.flush()
        except IntegrityError as error:  # the unique line key: reviewed meanwhile
            raise AlreadyReviewed(errors=[field_error("item_id", "reviewed already")]) \
                from error
        await review_submitted.run(session, review.id)
        return await _own_view(session, resources.settings, review, item)


async def _review_of_line(session: AsyncSession, item_id: int) -> ProductReview | None:
    return (await session.execute(select(ProductReview).where(
        ProductReview.order_item_id == item_id))).scalar_one_or_none()


async def lock_review(session: AsyncSession, review_id: int, model: Any = ProductReview) -> Any:
    """A review of `model` (product reviews; appointment reviews share the columns) locked,
    fresh from the database; 404 if there is none."""
    found = (await session.execute(select(model).where(model.id == review_id)
                                   .with_for_update()
                                   .execution_options(populate_existing=True))
             ).scalar_one_or_none()
    if found is None:
        raise NotFound("No such review")
    return found


async def _add_to_rating(session: AsyncSession, review: ProductReview, sign: int) -> None:
    """Add (+1) or take out (-1) a review from its product's rating. The product row is
    locked first, so the stats row is created once and concurrent changes add up."""
    product = (await session.execute(select(Product.id).where(
        Product.id == review.product_id).with_for_update())).scalar_one_or_none()
    if product is None:
        return  # the product is gone (its stats went with it)
    await session.execute(update(Product).where(Product.id == review.product_id).values(
        rating_count=Product.rating_count + sign,
        rating_sum=Product.rating_sum + sign * review.rating,
        updated_at=Product.updated_at).execution_options(synchronize_session=False))
    if await session.get(ProductRatingStats, review.product_id) is None:
        session.add(ProductRatingStats(product_id=review.product_id, star_1=0, star_2=0,
                                       star_3=0, star_4=0, star_5=0, with_images=0))
        await session.flush()
    star = getattr(ProductRatingStats, f"star_{review.rating}")
    changes: dict[str, Any] = {f"star_{review.rating}": star + sign}
    if review.has_images:
        changes["with_images"] = ProductRatingStats.with_images + sign
    await session.execute(update(ProductRatingStats).where(
        ProductRatingStats.product_id == review.product_id).values(**changes)
        .execution_options(synchronize_session=False))
    review.counted = sign > 0


async def move_status(review: ReviewColumns, status: str, reason: str,
                      add_to_rating: Callable[[int], Awaitable[None]]) -> bool:
    """Move a locked review (of any kind) to `status`, keeping its rating exact: it counts
    while visible, so `add_to_rating(+1)` runs when it is published and `(-1)` when it is
    taken down (each sets `counted`). True the first time it is published: the merchant is
    to be told."""
    review.status, review.status_reason = status, reason[:255]
    if status == "visible" and not review.counted:
        await add_to_rating(+1)
    elif status != "visible" and review.counted:
        await add_to_rating(-1)
    if status == "visible" and review.merchant_notified_at is None:
        review.merchant_notified_at = utcnow()
        return True
    return False


async def set_status(session: AsyncSession, review: ProductReview, status: str,
                     reason: str = "") -> None:
    """Move a locked review to `status` (moderation's verdicts and the admins' decisions),
    keeping the product's rating exact: it counts while visible. The merchant hears of a
    review the first time it is published. Caller commits, then `forget_product`."""
    async def add(sign: int) -> None:
        await _add_to_rating(session, review, sign)

    if await move_status(review, status, reason, add):
        name = (await session.execute(select(OrderItem.name).where(
            OrderItem.id == review.order_item_id))).scalar_one_or_none() or ""
        await notifications.notify(
            session, review.merchant_id, "order", "review_received",
            target_type="product_review", target_id=review.id,
            payload={"title": "新的评价", "product_id": review.product_id,
                     "rating": review.rating, "text": f"「{name}」收到 {review.rating} 星评价"})


async def forget_product(resources: Resources, product_id: int) -> None:
    """After a commit that changed a product's rating: its cached page shows the new one."""
    await products.forget_products(resources, [product_id])


async def reply(resources: Resources, review_id: int, *, actor_id: int,
                merchant_id: int | None, body: ReplyBody) -> dict[str, Any]:
    """The merchant of the product (`merchant_id`; None for an admin) replies once to a
    published review; the buyer is told. Another merchant's review is 404; a second reply
    409 ReviewReplyExists; a review not published 409 ReviewNotAllowed."""
    screen_text(body.text, "text")
    async with resources.db.session() as session, session.begin():
        review = await lock_review(session, review_id)
        if merchant_id is not None and review.merchant_id != merchant_id:
            raise NotFound("No such review")
        if review.reply_by is not None:
            raise ReviewReplyExists(errors=[field_error("text", "replied already")])
        if review.status != "visible":
            raise ReviewNotAllowed(f"The review is {review.status}: only a published review "
                                   "can be replied to")
        review.reply_text, review.reply_by, review.replied_at = body.text, actor_id, utcnow()
        view = (await _views(session, resources.settings, [review], public=False,
                             reveal=merchant_id is None))[0]
        await notifications.notify(
            session, review.user_id, "order", "review_replied", actor_id=actor_id,
            target_type="product_review", target_id=review.id,
            payload={"title": "商家回复了你的评价", "product_id": review.product_id,
                     "text": body.text[:100]})
        return view


# -- reading --------------------------------------------------------------------------------------


async def _authors(session: AsyncSession, ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    return {u.id: u for u in (await session.execute(
        select(User).where(User.id.in_(ids)))).scalars()}


async def review_views(session: AsyncSession, settings: Settings, rows: Sequence[ReviewColumns],
                       *, public: bool, reveal: bool = False) -> list[dict[str, Any]]:
    """Reviews of any kind as replies show them, without what they are about. An anonymous
    review hides who wrote it unless `reveal` (its author, an admin); `public` leaves out
    the moderation fields."""
    authors = await _authors(session, {r.user_id for r in rows})
    media = await media_by_id(session, [int(m) for r in rows for m in (r.media_ids or [])])
    out = []
    for row in rows:
        author = authors.get(row.user_id)
        hidden = row.anonymous and not reveal
        images = [image_view(settings, media.get(int(m))) for m in (row.media_ids or [])]
        view: dict[str, Any] = {
            "id": row.id, "rating": row.rating, "text": row.text,
            "images": [i for i in images if i is not None], "anonymous": row.anonymous,
            "author": {"id": None if hidden else row.user_id,
                       "nickname": ANONYMOUS_NAME if hidden or author is None
                       else author.nickname,
                       "avatar_url": "" if hidden or author is None else author.avatar_url},
            "reply": {"text": row.reply_text, "replied_at": _iso(row.replied_at)}
            if row.reply_by is not None else None,
            "created_at": _iso(row.created_at)}
        if not public:
            view.update({"media_ids": list(row.media_ids or []), "status": row.status,
                         "status_reason": row.status_reason})
        out.append(view)
    return out


async def _views(session: AsyncSession, settings: Settings, rows: list[ProductReview], *,
                 public: bool, reveal: bool = False) -> list[dict[str, Any]]:
    """Product reviews as replies show them; `public` leaves out the order fields too."""
    views = await review_views(session, settings, rows, public=public, reveal=reveal)
    for view, row in zip(views, rows, strict=True):
        view.update({"product_id": row.product_id, "sku_id": row.sku_id,
                     "spec_text": row.spec_text})
        if not public:
            view.update({"order_id": row.order_id, "item_id": row.order_item_id})
    return views


async def _own_view(session: AsyncSession, settings: Settings, review: ProductReview,
                    item: OrderItem) -> dict[str, Any]:
    view = (await _views(session, settings, [review], public=False, reveal=True))[0]
    view["product"] = {"id": item.product_id, "name": item.name, "image_url": item.image_url}
    return view


async def rating_summary(session: AsyncSession, product: Product) -> dict[str, Any]:
    """The product's rating: count, average (one decimal), counts per star and with photos."""
    stats = await session.get(ProductRatingStats, product.id,
                              populate_existing=True)
    count = int(product.rating_count or 0)
    stars = {str(n): int(getattr(stats, f"star_{n}")) if stats else 0 for n in range(1, 6)}
    return {"count": count,
            "average": round(int(product.rating_sum or 0) / count, 1) if count else None,
            "stars": stars, "with_images": int(stats.with_images) if stats else 0}


async def product_reviews(resources: Resources, viewer_id: int | None, product_id: int,
                          query: ProductReviewsQuery) -> dict[str, Any]:
    """GET /v1/products/{id}/reviews: a product's published reviews, newest first, filtered
    by rating or photos, with the rating summary (counts per star). Reviews by someone the
    viewer blocked, or who blocked the viewer, are left out."""
    async with resources.db.session() as session:
        product = await session.get(Product, product_id)
        if product is None or product.deleted_at is not None:
            raise NotFound("Product not found")
        rows, total = await published_reviews(session, ProductReview,
                                              ProductReview.product_id == product_id,
                                              viewer_id, query)
        items = await _views(session, resources.settings, rows, public=True)
        summary = await rating_summary(session, product)
    page = page_result(items, total, query)
    page["summary"] = summary
    return page


async def published_reviews(session: AsyncSession, model: Any, subject: Any,
                            viewer_id: int | None,
                            query: ProductReviewsQuery) -> tuple[list[Any], int]:
    """One page of the published reviews of `model` (a review table) matching `subject`,
    newest first, filtered by rating or photos, and their total. Reviews by someone the
    viewer blocked, or who blocked the viewer, are left out."""
    conditions = [subject, model.status == "visible"]
    if query.rating is not None:
        conditions.append(model.rating == query.rating)
    if query.with_images:
        conditions.append(model.has_images.is_(True))
    hidden = users.hidden_from(viewer_id, model.user_id)
    if hidden is not None:
        conditions.append(~hidden)
    total = int((await session.execute(select(func.count()).select_from(model)
                                       .where(*conditions))).scalar_one())
    rows = list((await session.execute(
        select(model).where(*conditions).order_by(model.id.desc())
        .offset(query.offset).limit(query.limit))).scalars())
    return rows, total


async def my_reviews(resources: Resources, user_id: int,
                     query: MyReviewsQuery) -> dict[str, Any]:
    """The caller's reviews in every state, newest first, each with its product line."""
    async with resources.db.session() as session:
        condition = ProductReview.user_id == user_id
        total = int((await session.execute(select(func.count()).select_from(ProductReview)
                                           .where(condition))).scalar_one())
        rows = list((await session.execute(
            select(ProductReview).where(condition).order_by(ProductReview.id.desc())
            .offset(query.offset).limit(query.limit))).scalars())
        items = await _views(session, resources.settings, rows, public=False, reveal=True)
        lines = {i.id: i for i in (await session.execute(select(OrderItem).where(
            OrderItem.id.in_([r.order_item_id for r in rows])))).scalars()} if rows else {}
    for item, row in zip(items, rows, strict=True):
        line = lines.get(row.order_item_id)
        item["product"] = {"id": row.product_id, "name": line.name if line else "",
                           "image_url": line.image_url if line else ""}
    return page_result(items, total, query)


async def lines_to_review(resources: Resources, user_id: int,
                          query: MyReviewsQuery) -> dict[str, Any]:
    """The caller's lines of completed orders not reviewed yet (and not refunded in full),
    most recently completed first: what the "to review" tab lists."""
    async with resources.db.session() as session:
        reviewed = exists().where(ProductReview.order_item_id == OrderItem.id)
        conditions = [Order.user_id == user_id, Order.status == "completed", ~reviewed,
                      OrderItem.refunded_quantity < OrderItem.quantity]
        joined = select(OrderItem, Order.completed_at).join(
            Order, Order.id == OrderItem.order_id).where(*conditions)
        total = int((await session.execute(select(func.count()).select_from(OrderItem).join(
            Order, Order.id == OrderItem.order_id).where(*conditions))).scalar_one())
        rows = (await session.execute(joined.order_by(Order.completed_at.desc(),
                                                      OrderItem.id)
                                      .offset(query.offset)
                                      .limit(query.limit))).all()
    items = [{"order_id": item.order_id, "item_id": item.id, "product_id": item.product_id,
              "sku_id": item.sku_id, "name": item.name, "image_url": item.image_url,
              "spec_text": item.spec_text, "completed_at": _iso(completed_at)}
             for item, completed_at in rows]
    return page_result(items, total, query)


async def seller_reviews(resources: Resources, merchant_id: int | None,
                         query: SellerReviewsQuery) -> dict[str, Any]:
    """Reviews of a merchant's products (published ones; an admin, merchant_id None, sees
    every shop's in any state), newest first, filtered by reply and product."""
    conditions: list[Any] = []
    if merchant_id is not None:
        conditions += [ProductReview.merchant_id == merchant_id,
                       ProductReview.status == "visible"]
    elif query.status is not None:
        conditions.append(ProductReview.status == query.status)
    if query.replied is not None:
        conditions.append(ProductReview.reply_by.is_not(None) if query.replied
                          else ProductReview.reply_by.is_(None))
    if query.product_id is not None:
        conditions.append(ProductReview.product_id == query.product_id)
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count()).select_from(ProductReview)
                                           .where(*conditions))).scalar_one())
        rows = list((await session.execute(
            select(ProductReview).where(*conditions).order_by(ProductReview.id.desc())
            .offset(query.offset).limit(query.limit))).scalars())
        items = await _views(session, resources.settings, rows, public=False,
                             reveal=merchant_id is None)
    return page_result(items, total, query)

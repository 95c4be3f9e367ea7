"""Coupons: templates issued by admins (platform coupons) and merchants (their own shop's),
claiming them (by button or by code, never beyond the quantity or a user's limit), the
wallet, and which coupons a product or the cart can use. The one module that writes
`coupon_templates` and creates `user_coupons`; what orders do to a held coupon (lock, use,
release, return) is in coupons_checkout.py. docs/promotions.md ("Coupons").

Claims of one template are serialised on its row (SELECT ... FOR UPDATE, the transaction's
first statement): the reads after it see every claim committed before, so the quantity
left, the claimer's count and a retried Idempotency-Key are read as they are, 300 users
racing for 100 coupons get exactly 100 and a double claim cannot pass a limit.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.coupons import CouponEvent, CouponTemplate, UserCoupon
from models.mall import Category, Merchant, Order, Product, Sku
from pawhome.mall import cart, categories, merchants
from pawhome.platform import audit
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import (
    CouponCodeUnknown,
    CouponLimitReached,
    CouponNotClaimable,
    CouponSoldOut,
    CouponTemplateLocked,
    CouponTermsInvalid,
    IdempotencyMismatch,
    NotFound,
    field_error,
)
from pawhome.platform.fields import Id
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.promotions import coupons_terms as terms
from pawhome.promotions.coupons_terms import TemplateBody, TemplatePatch, TemplateTerms

MAX_AVAILABLE = 50  # templates listed by GET /v1/coupons/available


class TemplateListQuery(PageQuery):
    status: Literal["active", "stopped"] | None = None
    merchant_id: Id | None = Field(None, description="admins: one shop's templates")


class WalletQuery(PageQuery):
    state: Literal["unused", "used", "expired"] = "unused"


class AvailableQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    product_id: Id | None = Field(None, description="coupons that cover this product")
    cart: bool = Field(False, description="coupons that cover the cart's selected lines")


class CodeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=terms.CODE)


def record_event(session: AsyncSession, coupon: UserCoupon, action: str, from_status: str,
                 order_id: int | None = None) -> None:
    """One line of a held coupon's trail (every transition writes one). Caller commits."""
    session.add(CouponEvent(user_coupon_id=coupon.id, action=action, from_status=from_status,
                            to_status=coupon.status, order_id=order_id))


# -- templates (admins and merchants) ----------------------------------------------------------


async def _check_targets(session: AsyncSession, issuer_id: int | None,
                         wanted: TemplateTerms, prefix: str = "") -> None:
    """The scope names things that exist, and a merchant's only its own (422 otherwise)."""
    errors = []
    if wanted.scope == "category" and wanted.category_id is not None \
            and await session.get(Category, wanted.category_id) is None:
        errors.append(field_error("category_id", "no such category"))
    if wanted.scope == "merchant":
        if issuer_id is not None and wanted.merchant_id not in (None, issuer_id):
            errors.append(field_error("merchant_id", "a shop may only issue for itself"))
        elif issuer_id is None and (wanted.merchant_id is None or await session.get(
                Merchant, wanted.merchant_id) is None):
            errors.append(field_error("merchant_id", "no such shop"))
    if wanted.scope == "products":
        found = dict((await session.execute(
            select(Product.id, Product.merchant_id).where(
                Product.id.in_(wanted.product_ids), Product.deleted_at.is_(None)))).all())
        for index, product_id in enumerate(wanted.product_ids):
            if product_id not in found:
                errors.append(field_error(f"product_ids.{index}", "no such product"))
            elif issuer_id is not None and found[product_id] != issuer_id:
                errors.append(field_error(f"product_ids.{index}",
                                          "not one of your products"))
    if wanted.code is not None and (await session.execute(select(CouponTemplate.id).where(
            CouponTemplate.code == wanted.code.upper()))).first() is not None:
        errors.append(field_error("code", "another coupon has this code"))
    if errors:
        raise CouponTermsInvalid(errors=[field_error(prefix + e["field"], e["message"])
                                         for e in errors])


def _issuer(role: str, user_id: int) -> int | None:
    """The issuing shop: a merchant's own; None (the platform) for an admin."""
    return None if role == "admin" else user_id


async def create_template(resources: Resources, user_id: int, role: str,
                          body: TemplateBody) -> dict[str, Any]:
    issuer_id = _issuer(role, user_id)

    async def work(session: AsyncSession) -> dict[str, Any]:
        terms.check_terms(body, terms.local_day(utcnow()))
        await _check_targets(session, issuer_id, body)
        if issuer_id is not None:
            await merchants.ensure_merchant(session, issuer_id)
        template = CouponTemplate(merchant_id=issuer_id, created_by=user_id, name=body.name,
                                  description=body.description,
                                  total_quantity=body.total_quantity,
                                  per_user_limit=body.per_user_limit, status="active")
        terms.apply_terms(template, body)
        if issuer_id is not None and template.scope == "merchant":
            template.scope_merchant_id = issuer_id
        session.add(template)
        await session.flush()
        audit.record(session, actor_id=user_id, actor_role=role, action="coupon.create",
                     target_type="coupon_template", target_id=template.id,
                     after={"name": template.name, "total_quantity": template.total_quantity})
        return terms.issuer_view(template)

    return await run_transaction(resources.db, work)


async def _own_template(session: AsyncSession, user_id: int, role: str, template_id: int,
                        lock: bool = False) -> CouponTemplate:
    """The template if the caller may manage it (its shop's, or any for an admin); 404
    otherwise, another shop's included."""
    query = select(CouponTemplate).where(CouponTemplate.id == template_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    template = (await session.execute(query)).scalar_one_or_none()
    if template is None or (role != "admin" and template.merchant_id != user_id):
        raise NotFound("No such coupon template")
    return template


def _terms_of(template: CouponTemplate) -> TemplateTerms:
    fixed = template.starts_at is not None and template.ends_at is not None
    return TemplateTerms(
        kind=template.kind, amount_off=template.amount_off, percent_off=template.percent_off,
        max_discount=template.max_discount, min_spend=template.min_spend,
        scope=template.scope, category_id=template.scope_category_id,
        merchant_id=template.scope_merchant_id,
        product_ids=[int(p) for p in template.scope_product_ids or []],
        valid_from=terms.local_day(template.starts_at) if fixed and template.starts_at else None,
        valid_to=terms.local_day(template.ends_at) - dt.timedelta(days=1)
        if fixed and template.ends_at else None,
        valid_days=template.valid_days or None, new_users_only=template.new_users_only,
        claim_method=template.claim_method, code=template.code)


async def update_template(resources: Resources, user_id: int, role: str, template_id: int,
                          patch: TemplatePatch) -> dict[str, Any]:
    """Change a template. Its terms only before anyone claimed one (409 after); the name,
    description, quantity (never below what was claimed) and per-user limit at any time."""
    async with resources.db.session() as session, session.begin():
        template = await _own_template(session, user_id, role, template_id, lock=True)
        before = terms.issuer_view(template)
        if patch.terms is not None:
            if template.issued_count > 0:
                raise CouponTemplateLocked(errors=[field_error(
                    "terms", f"{template.issued_count} already claimed")])
            terms.check_terms(patch.terms, terms.local_day(utcnow()), "terms.")
            same_code = patch.terms.code is not None and \
                patch.terms.code.upper() == template.code
            await _check_targets(session, template.merchant_id, patch.terms.model_copy(
                update={"code": None}) if same_code else patch.terms, "terms.")
            terms.apply_terms(template, patch.terms)
            if template.merchant_id is not None and template.scope == "merchant":
                template.scope_merchant_id = template.merchant_id
        if patch.total_quantity is not None:
            if patch.total_quantity < template.issued_count:
                raise CouponTermsInvalid(errors=[field_error(
                    "total_quantity", f"{template.issued_count} already claimed")])
            template.total_quantity = patch.total_quantity
        if patch.name is not None:
            template.name = patch.name
        if patch.description is not None:
            template.description = patch.description
        if patch.per_user_limit is not None:
            template.per_user_limit = patch.per_user_limit
        template.updated_at = utcnow()
        audit.record(session, actor_id=user_id, actor_role=role, action="coupon.update",
                     target_type="coupon_template", target_id=template.id,
                     before=before, after=terms.issuer_view(template))
        return terms.issuer_view(template)


async def stop_template(resources: Resources, user_id: int, role: str,
                        template_id: int) -> dict[str, Any]:
    """Stop issuing: no more claims. Coupons already claimed stay usable until they expire.
    Stopping a stopped template changes nothing."""
    async with resources.db.session() as session, session.begin():
        template = await _own_template(session, user_id, role, template_id, lock=True)
        if template.status != "stopped":
            template.status, template.stopped_at = "stopped", utcnow()
            audit.record(session, actor_id=user_id, actor_role=role, action="coupon.stop",
                         target_type="coupon_template", target_id=template.id,
                         after={"status": "stopped", "issued_count": template.issued_count})
        return terms.issuer_view(template)


async def get_template(resources: Resources, user_id: int, role: str,
                       template_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        return terms.issuer_view(await _own_template(session, user_id, role, template_id))


async def list_templates(resources: Resources, user_id: int, role: str,
                         query: TemplateListQuery) -> dict[str, Any]:
    """A merchant's own templates; an admin's view of all (or one shop's)."""
    conditions = []
    if role != "admin":
        conditions.append(CouponTemplate.merchant_id == user_id)
    elif query.merchant_id is not None:
        conditions.append(CouponTemplate.merchant_id == query.merchant_id)
    if query.status:
        conditions.append(CouponTemplate.status == query.status)
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count(CouponTemplate.id))
                                           .where(*conditions))).scalar_one())
        rows = (await session.execute(select(CouponTemplate).where(*conditions)
                                      .order_by(CouponTemplate.id.desc())
                                      .offset(query.offset).limit(query.limit))).scalars()
        return page_result([terms.issuer_view(t) for t in rows], total, query)


# -- claiming ----------------------------------------------------------------------------------


async def is_new_user(session: AsyncSession, user_id: int) -> bool:
    """A new user has never paid for an order (cancelled, unpaid orders do not count)."""
    return not (await session.execute(select(exists().where(
        Order.user_id == user_id, Order.paid_at.is_not(None))))).scalar_one()


def _claimable_problem(template: CouponTemplate, now: dt.datetime) -> str:
    if template.status != "active":
        return "this coupon is no longer issued"
    if template.ends_at is not None and template.ends_at <= now:
        return "this coupon has expired"
    return ""


async def _claim(session: AsyncSession, user_id: int, template_id: int, key: str | None,
                 by_code: bool) -> dict[str, Any]:
    template = (await session.execute(
        select(CouponTemplate).where(CouponTemplate.id == template_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one_or_none()
    if template is None:
        raise NotFound("No such coupon")
    now = utcnow()
    # Plain reads from here: this transaction's snapshot starts now, after the template lock,
    # so it sees every earlier claim of the template. (Locking reads of missing keys would
    # gap-lock the indexes and make claims of different templates deadlock each other.)
    if key:
        again = (await session.execute(select(UserCoupon).where(
            UserCoupon.user_id == user_id, UserCoupon.claim_key == key))).scalar_one_or_none()
        if again is not None and again.template_id == template.id:
            return terms.coupon_view(again, template, now)
        if again is not None:
            raise IdempotencyMismatch(errors=[field_error(
                "Idempotency-Key", "this key claimed another coupon")])
    if template.claim_method == "code" and not by_code:
        raise NotFound("No such coupon")  # a code coupon is found by its code only
    problem = _claimable_problem(template, now)
    if problem:
        raise CouponNotClaimable(problem)
    held = int((await session.execute(select(func.count(UserCoupon.id)).where(
        UserCoupon.template_id == template.id, UserCoupon.user_id == user_id))).scalar_one())
    if held >= template.per_user_limit:
        raise CouponLimitReached(f"at most {template.per_user_limit} per person")
    if template.issued_count >= template.total_quantity:
        raise CouponSoldOut()
    if template.new_users_only and not await is_new_user(session, user_id):
        raise CouponNotClaimable("for new users only: you have paid for an order before")
    valid_from, valid_until = terms.validity_for_claim(template, now)
    template.issued_count += 1
    coupon = UserCoupon(template_id=template.id, user_id=user_id, status="unused",
                        claim_key=key or None, valid_from=valid_from, valid_until=valid_until,
                        claimed_at=now, updated_at=now)
    session.add(coupon)
    await session.flush()
    record_event(session, coupon, "claim", "")
    return terms.coupon_view(coupon, template, now)


async def claim(resources: Resources, user_id: int, template_id: int,
                key: str | None = None) -> dict[str, Any]:
    """Claim one coupon of a button template. `key` (the Idempotency-Key): the same claim
    retried returns the coupon it made. 409 when sold out, over the limit, stopped or over."""
    return await run_transaction(resources.db,
                                 lambda session: _claim(session, user_id, template_id, key,
                                                        by_code=False))


async def claim_by_code(resources: Resources, user_id: int, code: str,
                        key: str | None = None) -> dict[str, Any]:
    """Claim the coupon a code stands for (case does not matter). 422 for an unknown code."""
    async with resources.db.session() as session:
        template_id = (await session.execute(select(CouponTemplate.id).where(
            CouponTemplate.code == code.upper()))).scalar_one_or_none()
    if template_id is None:
        raise CouponCodeUnknown(errors=[field_error("code", "no coupon has this code")])
    return await run_transaction(resources.db,
                                 lambda session: _claim(session, user_id, template_id, key,
                                                        by_code=True))


# -- the wallet and what is available ----------------------------------------------------------


async def wallet(resources: Resources, user_id: int, query: WalletQuery) -> dict[str, Any]:
    """The user's coupons in one state: unused (usable or locked by an unpaid order, soonest
    to expire first), used (newest first) or expired (unused past validity)."""
    now = utcnow()
    state = {
        "unused": or_(and_(UserCoupon.status == "unused", UserCoupon.valid_until > now),
                      UserCoupon.status == "locked"),
        "used": UserCoupon.status == "used",
        "expired": and_(UserCoupon.status == "unused", UserCoupon.valid_until <= now),
    }[query.state]
    order = {"unused": (UserCoupon.valid_until, UserCoupon.id),
             "used": (UserCoupon.used_at.desc(), UserCoupon.id.desc()),
             "expired": (UserCoupon.valid_until.desc(), UserCoupon.id.desc())}[query.state]
    conditions = (UserCoupon.user_id == user_id, state)
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count(UserCoupon.id))
                                           .where(*conditions))).scalar_one())
        rows = (await session.execute(
            select(UserCoupon, CouponTemplate).join(
                CouponTemplate, CouponTemplate.id == UserCoupon.template_id)
            .where(*conditions).order_by(*order).offset(query.offset).limit(query.limit))).all()
        return page_result([terms.coupon_view(c, t, now) for c, t in rows], total, query)


async def goods_with_categories(session: AsyncSession,
                                lines: list[tuple[int, int, int]]) -> list[terms.Goods]:
    """(product_id, merchant_id, amount) lines as Goods, with each product's category."""
    ids = {product_id for product_id, _, _ in lines}
    category_of = dict((await session.execute(select(Product.id, Product.category_id).where(
        Product.id.in_(ids)))).all()) if ids else {}
    return [terms.Goods(product_id, merchant_id, category_of.get(product_id), amount)
            for product_id, merchant_id, amount in lines]


async def subtrees(session: AsyncSession,
                   templates: list[CouponTemplate]) -> dict[int, frozenset[int]]:
    """Each category-scoped template's category with its descendants, by template id."""
    out: dict[int, frozenset[int]] = {}
    for template in templates:
        if template.scope == "category" and template.scope_category_id is not None:
            out[template.id] = frozenset(await categories.descendant_ids(
                session, template.scope_category_id))
    return out


async def _goods_for(session: AsyncSession, user_id: int,
                     query: AvailableQuery) -> list[terms.Goods] | None:
    """What the coupons should cover: the product (its lowest price), the cart's selected
    lines, or None (every claimable coupon)."""
    if query.product_id is not None:
        product = await session.get(Product, query.product_id)
        if product is None or product.deleted_at is not None or product.status != "on_sale":
            raise NotFound("No such product", errors=[field_error("product_id",
                                                                  "no product on sale")])
        return [terms.Goods(product.id, product.merchant_id, product.category_id,
                            product.price_min)]
    if query.cart:
        lines = await cart.selected_lines(session, user_id)
        quantity = {line.sku_id: line.quantity for line in lines}
        rows = (await session.execute(
            select(Sku.id, Sku.price, Product.id, Product.merchant_id)
            .join(Product, Product.id == Sku.product_id)
            .where(Sku.id.in_(quantity), Sku.deleted_at.is_(None)))).all() if lines else []
        return await goods_with_categories(session, [
            (int(product_id), int(merchant_id), int(price) * quantity[int(sku_id)])
            for sku_id, price, product_id, merchant_id in rows])
    return None


async def available(resources: Resources, user_id: int,
                    query: AvailableQuery) -> dict[str, Any]:
    """Coupons to claim now (button coupons, active, not sold out, under the caller's limit;
    new-user coupons only for a new user) and the caller's usable coupons — for a product or
    the cart, only those that cover it, each with what it would save on it."""
    now = utcnow()
    async with resources.db.session() as session:
        goods = await _goods_for(session, user_id, query)
        new_user = await is_new_user(session, user_id)
        held_counts = dict((await session.execute(
            select(UserCoupon.template_id, func.count(UserCoupon.id))
            .where(UserCoupon.user_id == user_id).group_by(UserCoupon.template_id))).all())
        open_templates = list((await session.execute(
            select(CouponTemplate).where(
                CouponTemplate.status == "active", CouponTemplate.claim_method == "button",
                CouponTemplate.issued_count < CouponTemplate.total_quantity,
                or_(CouponTemplate.ends_at.is_(None), CouponTemplate.ends_at > now))
            .order_by(CouponTemplate.id.desc()).limit(500))).scalars())
        mine = (await session.execute(
            select(UserCoupon, CouponTemplate).join(
                CouponTemplate, CouponTemplate.id == UserCoupon.template_id)
            .where(UserCoupon.user_id == user_id, UserCoupon.status == "unused",
                   UserCoupon.valid_from <= now, UserCoupon.valid_until > now)
            .order_by(UserCoupon.valid_until))).all()
        trees = await subtrees(session, open_templates + [t for _, t in mine])

    def saving(template: CouponTemplate) -> tuple[bool, int]:
        if goods is None:
            return True, 0
        eligible = terms.eligible_amount(template, goods, trees.get(template.id, frozenset()))
        return eligible > 0, terms.discount(template, eligible)

    claimable = []
    for template in open_templates:
        if held_counts.get(template.id, 0) >= template.per_user_limit or \
                (template.new_users_only and not new_user):
            continue
        applies, saves = saving(template)
        if applies:
            claimable.append({**terms.template_view(template), "saving": saves,
                              "held": int(held_counts.get(template.id, 0))})
        if len(claimable) >= MAX_AVAILABLE:
            break
    owned = []
    for coupon, template in mine:
        applies, saves = saving(template)
        if applies:
            owned.append({**terms.coupon_view(coupon, template, now), "saving": saves})
    return {"claimable": claimable, "owned": owned}

"""Product categories: a tree (parent, name, icon, sort order, enabled) that admins edit and
everyone reads. The one module that writes `categories`.

The public tree holds enabled categories under enabled parents only, and is cached in Redis
(pawhome/mall/catalogue_cache.py) until the next category write. A category cannot become its
own ancestor, the tree is at most MAX_DEPTH levels deep, sibling names are unique, and a
category is deleted only when no product and no child uses it. Every write is audit-logged.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import Category, Product
from pawhome.mall import catalogue_cache
from pawhome.platform import audit, codec
from pawhome.platform.errors import Conflict, NotFound, ValidationFailed, field_error
from pawhome.platform.fields import NOT_BLANK, Id, no_null_default
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text

MAX_DEPTH = 4
MAX_SORT = 1_000_000

CATEGORY_RULES = {
    "parent_id": f"an existing category; not the category itself or one below it; at most "
                 f"{MAX_DEPTH} levels",
    "name": "unique among its siblings; no word of the sensitive-word list",
}


class CategoryBody(BaseModel):
    """A new category (POST /v1/admin/categories)."""
    model_config = ConfigDict(extra="forbid")

    parent_id: Id | None = Field(None, description="null: a top-level category")
    name: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    icon: str = Field("", max_length=512, description="an icon URL")
    sort: int = Field(0, ge=-MAX_SORT, le=MAX_SORT, description="smaller first")
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class CategoryPatch(BaseModel):
    """Changes to a category (PATCH): only the fields sent change; `parent_id: null` moves
    it to the top level. The other fields may be left out, never sent as null."""
    model_config = ConfigDict(extra="forbid")

    parent_id: Id | None = Field(None, description="null: move to the top level")
    name: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    icon: str = Field(None, max_length=512,  # type: ignore[assignment]
                      json_schema_extra=no_null_default)
    sort: int = Field(None, ge=-MAX_SORT, le=MAX_SORT,  # type: ignore[assignment]
                      json_schema_extra=no_null_default)
    enabled: bool = Field(None, json_schema_extra=no_null_default)  # type: ignore[assignment]

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


# -- reading the table -------------------------------------------------------------------------


async def all_categories(session: AsyncSession) -> list[Category]:
    return list((await session.execute(
        select(Category).order_by(Category.sort, Category.id))).scalars())


def _children_of(rows: list[Category]) -> dict[int | None, list[Category]]:
    children: dict[int | None, list[Category]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row)
    return children


def _view(row: Category) -> dict[str, Any]:
    return {"id": row.id, "parent_id": row.parent_id, "name": row.name, "icon": row.icon,
            "sort": row.sort, "enabled": row.enabled}


def _tree(rows: list[Category], enabled_only: bool) -> list[dict[str, Any]]:
    children = _children_of(rows)

    def build(parent_id: int | None, depth: int) -> list[dict[str, Any]]:
        if depth > MAX_DEPTH:
            return []
        out = []
        for row in children.get(parent_id, []):
            if enabled_only and not row.enabled:
                continue  # a disabled category hides its whole subtree
            out.append({**_view(row), "children": build(row.id, depth + 1)})
        return out

    return build(None, 1)


async def descendant_ids(session: AsyncSession, category_id: int) -> list[int]:
    """The category and every category below it (any state): a list filtered by a category
    shows the products of its subtree."""
    rows = (await session.execute(select(Category.id, Category.parent_id))).all()
    children: dict[int | None, list[int]] = {}
    for row_id, parent_id in rows:
        children.setdefault(parent_id, []).append(int(row_id))
    found, todo = [], [int(category_id)]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return sorted(found)


async def _ancestors(session: AsyncSession, category: Category) -> list[Category]:
    """The category's parents, nearest first."""
    out: list[Category] = []
    parent_id = category.parent_id
    while parent_id is not None and len(out) <= MAX_DEPTH:
        parent = await session.get(Category, parent_id)
        if parent is None:
            break
        out.append(parent)
        parent_id = parent.parent_id
    return out


async def usable_category(session: AsyncSession, category_id: int,
                          field: str = "category_id") -> Category:
    """A category products may be filed under: it exists and it and its parents are enabled
    (a leaf or not: a product may sit on any level). 422 naming `field` otherwise."""
    category = await session.get(Category, category_id)
    if category is None:
        raise ValidationFailed(errors=[field_error(field, "no such category")])
    if not category.enabled or any(not c.enabled for c in await _ancestors(session, category)):
        raise ValidationFailed(errors=[field_error(field, "the category is disabled")])
    return category


async def category_names(session: AsyncSession, category_id: int | None) -> list[str]:
    """The category's name and its parents' (for search documents), nearest first."""
    if category_id is None:
        return []
    category = await session.get(Category, category_id)
    if category is None:
        return []
    return [category.name, *(c.name for c in await _ancestors(session, category))]


# -- the public tree ---------------------------------------------------------------------------


def tree_reads(resources: Resources) -> list[str]:
    """The Redis keys category_tree reads (the gateway reads them with its admission call)."""
    cache = resources.cache
    return [catalogue_cache.category_generation_key(cache),
            catalogue_cache.category_tree_key(cache)]


async def category_tree(resources: Resources, known: dict[str, Any] | None = None) -> bytes:
    """GET /v1/categories: the encoded `{"items": tree}` of enabled categories, children
    nested and ordered by sort then id; from Redis when warm."""
    cache = resources.cache
    gen_key, tree_key = tree_reads(resources)
    generation, payload = await catalogue_cache.read(cache, gen_key, tree_key, known)
    if payload is not None:
        return payload
    async with resources.db.session() as session:
        payload = codec.dumps({"items": _tree(await all_categories(session), True)})
    await catalogue_cache.fill(cache, tree_key, generation, payload,
                               resources.settings.category_cache_seconds)
    return payload


async def admin_tree(resources: Resources) -> dict[str, Any]:
    """GET /v1/admin/categories: every category, disabled ones included, as a tree."""
    async with resources.db.session() as session:
        return {"items": _tree(await all_categories(session), False)}


# -- admin writes ------------------------------------------------------------------------------


async def _check_parent(session: AsyncSession, category_id: int | None,
                        parent_id: int | None) -> None:
    """422 unless `parent_id` may hold the category (and its subtree) within MAX_DEPTH."""
    if parent_id is None:
        return
    parent = await session.get(Category, parent_id)
    if parent is None:
        raise ValidationFailed(errors=[field_error("parent_id", "no such category")])
    subtree_depth = 1
    if category_id is not None:
        below = await descendant_ids(session, category_id)
        if parent_id in below:
            raise ValidationFailed(errors=[field_error(
                "parent_id", "a category cannot be moved under itself or a category below it")])
        subtree_depth = await _subtree_depth(session, category_id)
    parent_depth = 1 + len(await _ancestors(session, parent))
    if parent_depth + subtree_depth > MAX_DEPTH:
        raise ValidationFailed(errors=[field_error(
            "parent_id", f"categories are at most {MAX_DEPTH} levels deep")])


async def _subtree_depth(session: AsyncSession, category_id: int) -> int:
    children = _children_of(await all_categories(session))

    def depth(node: int, level: int) -> int:
        if level > MAX_DEPTH + 1:
            return level
        return max([depth(c.id, level + 1) for c in children.get(node, [])], default=level)

    return depth(category_id, 1)


async def _check_name(session: AsyncSession, category_id: int | None, parent_id: int | None,
                      name: str) -> None:
    screen_text(name, "name")
    siblings = select(Category.id).where(
        Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id,
        Category.name == name)
    if category_id is not None:
        siblings = siblings.where(Category.id != category_id)
    if (await session.execute(siblings.limit(1))).first() is not None:
        raise Conflict("A category of that name is already there",
                       errors=[field_error("name", "unique among its siblings")])


async def create_category(resources: Resources, admin_id: int,
                          body: CategoryBody) -> dict[str, Any]:
    """An admin adds a category; the cached tree and product lists are dropped."""
    async with resources.db.session() as session, session.begin():
        await _check_parent(session, None, body.parent_id)
        await _check_name(session, None, body.parent_id, body.name)
        row = Category(parent_id=body.parent_id, name=body.name, icon=body.icon,
                       sort=body.sort, enabled=body.enabled)
        session.add(row)
        await session.flush()
        view = _view(row)
        audit.record(session, actor_id=admin_id, actor_role="admin", action="category.create",
                     target_type="category", target_id=row.id, after=view)
    await catalogue_cache.forget(resources.cache, lists=True, categories=True)
    return view


async def _locked(session: AsyncSession, category_id: int) -> Category:
    row = (await session.execute(select(Category).where(Category.id == category_id)
                                 .with_for_update())).scalar_one_or_none()
    if row is None:
        raise NotFound("No such category")
    return row


async def update_category(resources: Resources, admin_id: int, category_id: int,
                          body: CategoryPatch) -> dict[str, Any]:
    """An admin changes a category (moving it keeps its subtree with it); the cached tree
    and product lists are dropped."""
    sent = body.model_fields_set
    async with resources.db.session() as session, session.begin():
        row = await _locked(session, category_id)
        before = _view(row)
        parent_id = body.parent_id if "parent_id" in sent else row.parent_id
        name = body.name if body.name is not None else row.name
        if "parent_id" in sent and parent_id != row.parent_id:
            await _check_parent(session, row.id, parent_id)
        if parent_id != row.parent_id or name != row.name:
            await _check_name(session, row.id, parent_id, name)
        row.parent_id, row.name = parent_id, name
        if body.icon is not None:
            row.icon = body.icon
        if body.sort is not None:
            row.sort = body.sort
        if body.enabled is not None:
            row.enabled = body.enabled
        await session.flush()
        view = _view(row)
        audit.record(session, actor_id=admin_id, actor_role="admin", action="category.update",
                     target_type="category", target_id=row.id, before=before, after=view)
    await catalogue_cache.forget(resources.cache, lists=True, categories=True)
    return view


async def delete_category(resources: Resources, admin_id: int,
                          category_id: int) -> dict[str, Any]:
    """An admin deletes a category no product and no child category uses (409 otherwise).
    Deleted products that still name it let go of it."""
    async with resources.db.session() as session, session.begin():
        row = await _locked(session, category_id)
        children = int((await session.execute(select(func.count()).select_from(Category)
                                              .where(Category.parent_id == row.id)))
                       .scalar_one())
        if children:
            raise Conflict(f"The category has {children} child categories: move or delete "
                           "them first")
        products = int((await session.execute(select(func.count()).select_from(Product).where(
            Product.category_id == row.id, Product.deleted_at.is_(None)))).scalar_one())
        if products:
            raise Conflict(f"{products} products are filed under this category: move them "
                           "first")
        await session.execute(update(Product).where(Product.category_id == row.id)
                              .values(category_id=None)
                              .execution_options(synchronize_session=False))
        before = _view(row)
        await session.delete(row)
        audit.record(session, actor_id=admin_id, actor_role="admin", action="category.delete",
                     target_type="category", target_id=category_id, before=before)
    await catalogue_cache.forget(resources.cache, lists=True, categories=True)
    return {"id": category_id, "deleted": True}

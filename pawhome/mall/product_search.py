"""Searching products: their search document (registered with the search engine,
pawhome/search/index.py, segmented as posts are) and GET /v1/products/search.

A product is in the index while it is on sale: the catalogue's writes and status changes
call `index_later`, and the search.index task reads the row as it is then. A query takes the
public list's filters and sorts, plus relevance (the default); results are checked against
the rows now and carry highlighted names and subtitles. docs/search.md, docs/mall.md.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import Product
from pawhome.mall import categories
from pawhome.mall.product_rendering import cards
from pawhome.mall.product_views import ProductFilters, order_by, public_conditions
from pawhome.platform.resources import Resources
from pawhome.search import index as search
from pawhome.search.index import PET_TYPE_WORDS, document_tokens, highlight
from settings import get_settings

_settings = get_settings()
NAME_SNIPPET_CHARS = 60


async def _product_document(session: AsyncSession, product_id: int) -> str | None:
    product = await session.get(Product, product_id, with_for_update=True,
                                populate_existing=True)
    if product is None or product.deleted_at is not None or product.status != "on_sale":
        return None
    texts = [product.name, product.subtitle, product.brand, *(product.tags or []),
             *await categories.category_names(session, product.category_id),
             *(PET_TYPE_WORDS.get(p, p) for p in (product.pet_types or [])
               if isinstance(p, str)),
             *(v for a in (product.spec_attrs or []) if isinstance(a, dict)
               for v in a.get("values", [])),
             product.description]
    return document_tokens(texts)


search.register_document("product", Product, _product_document)


class ProductSearchQuery(ProductFilters):
    q: str = Field(min_length=1, max_length=_settings.search_query_max_chars,
                   description="Words to find; every word is required")
    page: int = Field(1, ge=1, le=_settings.search_max_page)
    sort: Literal["relevance", "default", "sales", "price_asc", "price_desc", "newest"] = \
        Field("relevance", description="relevance: best match, then best sellers")


async def find_products(resources: Resources, viewer_id: int | None,
                        query: ProductSearchQuery) -> dict[str, Any]:
    """Products on sale holding every word of `q`, filtered and sorted as asked, each card
    with `name_html` and `subtitle_html` (escaped, matches in <em>). A logged-in searcher's
    first pages are remembered among their recent searches."""
    await search.ready()
    parsed = search.parse_query(resources.settings, query.q)
    if viewer_id is not None and query.page == 1:
        await search.remember_search(resources.cache, viewer_id, parsed.text)
    async with resources.db.session() as session:
        matches = search.match(session, "product", parsed).subquery("m")
        base = (select(Product, matches.c.score)
                .join(matches, matches.c.doc_id == Product.id)
                .where(*await public_conditions(session, query)))
        total = int((await session.execute(select(func.count()).select_from(
            base.with_only_columns(Product.id).subquery()))).scalar_one())
        order = [matches.c.score.desc(), *order_by("default")] if query.sort == "relevance" \
            else order_by(query.sort)
        rows = (await session.execute(base.order_by(*order)
                                      .offset((query.page - 1) * query.limit)
                                      .limit(query.limit))).all()
        found = await cards(session, resources.settings, [row[0] for row in rows])
    items = [{**card, "name_html": highlight(row[0].name, parsed.words, NAME_SNIPPET_CHARS),
              "subtitle_html": highlight(row[0].subtitle, parsed.words,
                                         resources.settings.search_snippet_chars),
              "score": round(float(row[1] or 0), 6)}
             for card, row in zip(found, rows, strict=True)]
    return search.result_page(items, total, query.page, query.limit)


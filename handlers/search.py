"""Search endpoints: posts, users and topics by words (Chinese segmented), and the caller's
recent searches. The work is in pawhome/search/index.py; see docs/search.md."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.pagination import page_result
from models.community import SPECIES
from pawhome.search import index as search
from pawhome.platform.errors import ValidationFailed, field_error

PetType = Literal[SPECIES]  # type: ignore[valid-type]


class SearchQueryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str = Field(max_length=200, description="Words to find; every word is required")
    page: int = Field(1, ge=1)
    limit: int = Field(10, ge=1, le=50)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


class PostSearchParams(SearchQueryParams):
    topic: str | None = Field(None, max_length=64, description="Topic name (with or without #)")
    pet_type: PetType | None = None


class _SearchHandler(ApiHandler):
    async def parsed_query(self) -> search.SearchQuery:
        if self.query.page > self.r.settings.search_max_page:
            raise ValidationFailed(errors=[field_error(
                "page", f"at most {self.r.settings.search_max_page}")])
        await search.ready()  # the first search of a process builds the segmenter off-loop
        parsed = search.parse_query(self.r.settings, self.query.q)
        if self.query.page == 1:
            await search.remember_search(self.r.cache, self.user_id, parsed.text)
        return parsed


class SearchPostsHandler(_SearchHandler):
    @endpoint(query=PostSearchParams, tags=("search",),
              summary="Public posts holding every word of q, best match then newest",
              description="Items carry an HTML `snippet` (escaped text, matches in <em>).")
    async def get(self) -> None:
        parsed = await self.parsed_query()
        async with self.r.db.session() as session:
            items, total = await search.search_posts(
                session, self.r.settings, self.user_id, parsed, topic=self.query.topic,
                pet_type=self.query.pet_type, offset=self.query.offset,
                limit=self.query.limit)
        self.ok(page_result(items, total, self.query))


class SearchUsersHandler(_SearchHandler):
    @endpoint(query=SearchQueryParams, tags=("search",),
              summary="Users whose nickname or bio holds every word of q")
    async def get(self) -> None:
        parsed = await self.parsed_query()
        async with self.r.db.session() as session:
            items, total = await search.search_users(
                session, self.r.settings, self.user_id, parsed, offset=self.query.offset,
                limit=self.query.limit)
        self.ok(page_result(items, total, self.query))


class SearchTopicsHandler(_SearchHandler):
    @endpoint(query=SearchQueryParams, tags=("search",),
              summary="Topics named q, starting with q, or holding its words")
    async def get(self) -> None:
        parsed = await self.parsed_query()
        async with self.r.db.session() as session:
            items, total = await search.search_topics(
                session, parsed, offset=self.query.offset, limit=self.query.limit)
        self.ok(page_result(items, total, self.query))


class RecentSearchesHandler(ApiHandler):
    @endpoint(tags=("search",), summary="The caller's recent searches, newest first")
    async def get(self) -> None:
        self.ok({"items": await search.recent_searches(self.r.cache, self.user_id)})

    @endpoint(tags=("search",), summary="Clear the caller's recent searches")
    async def delete(self) -> None:
        await search.clear_recent_searches(self.r.cache, self.user_id)
        self.ok({"items": []})

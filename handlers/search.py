"""Search endpoints: posts, users and topics by words (Chinese segmented), and the caller's
recent searches. The engine is pawhome/search/index.py; the queries are the domains'
(pawhome/community/post_search.py, pawhome/identity/user_search.py); docs/search.md."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.community import post_search
from pawhome.community.posts import Species
from pawhome.identity import user_search
from pawhome.search import index as search
from settings import get_settings

# The query model carries the configured limits, so the served document states them.
_settings = get_settings()
# What segmentation decides, which no schema can state.
Q_RULE = {"q": "at least one letter, digit or CJK character, and at most "
               "SEARCH_QUERY_MAX_WORDS (8) words once segmented"}


class SearchQueryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str = Field(min_length=1, max_length=_settings.search_query_max_chars,
                   description="Words to find; every word is required")
    page: int = Field(1, ge=1, le=_settings.search_max_page)
    limit: int = Field(10, ge=1, le=50)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


class PostSearchParams(SearchQueryParams):
    topic: str | None = Field(None, max_length=64, description="Topic name (with or without #)")
    pet_type: Species | None = None


class SearchPostsHandler(ApiHandler):
    @endpoint(query=PostSearchParams, tags=("search",), refuses=Q_RULE,
              summary="Public posts holding every word of q, best match then newest",
              description="Items carry an HTML `snippet` (escaped text, matches in <em>).")
    async def get(self) -> None:
        q = self.query
        self.ok(await post_search.find_posts(self.r, self.user_id, q.q, q.page, q.limit,
                                             topic=q.topic, pet_type=q.pet_type))


class SearchUsersHandler(ApiHandler):
    @endpoint(query=SearchQueryParams, tags=("search",), refuses=Q_RULE,
              summary="Users whose nickname or bio holds every word of q")
    async def get(self) -> None:
        q = self.query
        self.ok(await user_search.find_users(self.r, self.user_id, q.q, q.page, q.limit))


class SearchTopicsHandler(ApiHandler):
    @endpoint(query=SearchQueryParams, tags=("search",), refuses=Q_RULE,
              summary="Topics named q, starting with q, or holding its words")
    async def get(self) -> None:
        q = self.query
        self.ok(await post_search.find_topics(self.r, self.user_id, q.q, q.page, q.limit))


class RecentSearchesHandler(ApiHandler):
    @endpoint(tags=("search",), summary="The caller's recent searches, newest first")
    async def get(self) -> None:
        self.ok(await search.list_recent(self.r, self.user_id))

    @endpoint(tags=("search",), summary="Clear the caller's recent searches")
    async def delete(self) -> None:
        self.ok(await search.clear_recent(self.r, self.user_id))

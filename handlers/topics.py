"""Topic endpoints: the hot topics and a topic's page (the topic and its visible posts)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.community import feeds
from pawhome.platform.pagination import CURSOR_RULE


class HotTopicsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(20, ge=1, le=50)


class HotTopicsHandler(ApiHandler):
    @endpoint(auth=False, query=HotTopicsQuery, tags=("topics",),
              summary="Topics by heat (recomputed from recent posts by a beat job)")
    async def get(self) -> None:
        self.ok(await feeds.hot_topics(self.r, self.query.limit))


class TopicHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=feeds.TopicPageQuery, tags=("topics",),
              refuses=CURSOR_RULE,
              summary="A topic and its posts the caller may see")
    async def get(self, name: str) -> None:
        self.ok(await feeds.topic_page(self.r, self.viewer_id, name, self.query))

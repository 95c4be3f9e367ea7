"""Topic endpoints: the hot topics and a topic's page (the topic and its visible posts)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import endpoint
from handlers.posts import CommunityHandler
from pawhome.community import feeds
from pawhome.platform.pagination import CURSOR_RULE


class HotTopicsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(20, ge=1, le=50)


class HotTopicsHandler(CommunityHandler):
    @endpoint(auth=False, query=HotTopicsQuery, tags=("topics",),
              summary="Topics by heat (recomputed from recent posts by a beat job)")
    async def get(self) -> None:
        async with self.r.db.session() as session:
            self.ok({"items": await feeds.hot_topics(session, self.query.limit)})


class TopicHandler(CommunityHandler):
    @endpoint(auth=False, viewer=True, query=feeds.TopicPageQuery, tags=("topics",),
              refuses=CURSOR_RULE,
              summary="A topic and its posts the caller may see")
    async def get(self, name: str) -> None:
        viewer = self.viewer_id
        async with self.r.db.session() as session:
            self.ok(await feeds.topic_page(session, self.r.cache, self.r.settings, viewer,
                                           name, self.query))

"""The long-lived clients a process holds: database, Redis, outbound HTTP.

A gateway process builds one `Resources` at start and hands it to every handler; a worker
process builds one per child after fork. Domain functions take what they need from it.
"""
from __future__ import annotations

import logging

import httpx

from pawhome.platform.cache import Cache
from pawhome.platform.db import Database
from settings import Settings


# httpx logs every request URL at INFO, and outbound URLs carry secrets (WeChat's appsecret,
# login codes, access_token): keep it quiet in every process that holds an HTTP client.
logging.getLogger("httpx").setLevel(logging.WARNING)


class Resources:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings)
        self.cache = Cache(settings)
        # One pooled client for calls out (WeChat, SMS); every call has a timeout.
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.wechat_timeout, connect=min(3.0, settings.wechat_timeout)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def close(self) -> None:
        from pawhome.messaging import chat_writer  # its connections go back before the pool closes

        await chat_writer.close(self)
        await self.http.aclose()
        await self.cache.close()
        await self.db.close()

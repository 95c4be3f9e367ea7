"""Test helpers that let a test read as the behaviour it checks.

    me = await api.login()
    reply = await api.get("/v1/users/me", token=me.token)
    data = reply.ok()                       # asserts code 0, returns data
    reply.error(422, field="nickname")      # asserts status, envelope and a field error
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tornado.httpclient import HTTPRequest

from pawhome.platform import codec


@dataclass
class Reply:
    status: int
    body: bytes
    headers: Any
    _json: Any = field(default=None, repr=False)

    @property
    def json(self) -> Any:
        if self._json is None and self.body:
            self._json = codec.loads(self.body)
        return self._json

    def ok(self, status: int = 200) -> Any:
        assert self.status == status, f"expected {status}, got {self.status}: {self.body[:500]!r}"
        assert self.json["code"] == 0, self.json
        return self.json["data"]

    def error(self, status: int, code: int | None = None, field: str | None = None) -> dict:
        assert self.status == status, f"expected {status}, got {self.status}: {self.body[:500]!r}"
        body = self.json
        assert set(body) >= {"code", "message", "errors"}, body
        assert body["code"] != 0 and isinstance(body["message"], str) and body["message"]
        if code is not None:
            assert body["code"] == code, body
        if field is not None:
            assert any(e["field"] == field for e in body["errors"]), body["errors"]
        return body


@dataclass
class Session:
    user_id: int
    token: str
    refresh_token: str
    openid: str


class Api:
    def __init__(self, http_client, base_url: str, app) -> None:
        self.http_client = http_client
        self.base_url = base_url
        self.app = app

    async def request(self, method: str, path: str, json: Any = None, token: str | None = None,
                      headers: dict | None = None, body: bytes | str | None = None) -> Reply:
        hdrs = {"Content-Type": "application/json"}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        if json is not None:
            body = codec.dumps(json)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(self.base_url + path, method=method, headers=hdrs, body=body,
                              allow_nonstandard_methods=True, request_timeout=30)
        response = await self.http_client.fetch(request, raise_error=False)
        return Reply(response.code, response.body or b"", response.headers)

    async def get(self, path: str, **kw) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw) -> Reply:
        return await self.request("POST", path, json=json, **kw)

    async def put(self, path: str, json: Any = None, **kw) -> Reply:
        return await self.request("PUT", path, json=json, **kw)

    async def delete(self, path: str, **kw) -> Reply:
        return await self.request("DELETE", path, **kw)

    async def login(self, openid: str | None = None, role: str = "user") -> Session:
        """Log in through the development login (a new user unless openid is given)."""
        openid = openid or "t-" + uuid.uuid4().hex[:20]
        data = (await self.post("/v1/auth/dev-login",
                                json={"openid": openid, "role": role})).ok()
        return Session(data["user_id"], data["access_token"], data["refresh_token"], openid)

"""Helpers for the console tests: staff accounts and signed-in console sessions."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from pawhome.console import staff as staff_accounts
from pawhome.identity.tokens import CONSOLE_COOKIE

PASSWORD = "correct horse battery"


@dataclass
class ConsoleSession:
    login: str
    user_id: int
    cookie: str
    csrf: str

    def headers(self, csrf: bool = True) -> dict[str, str]:
        """What the console page sends: the session cookie and, for writes, the CSRF header."""
        out = {"Cookie": f"{CONSOLE_COOKIE}={self.cookie}"}
        if csrf:
            out["X-CSRF-Token"] = self.csrf
        return out


async def make_staff(api, role: str = "admin", user_id: int | None = None,
                     totp: bool = False) -> dict:
    """A staff account (password PASSWORD) mapped to a new user of `role`, or to `user_id`."""
    if user_id is None:
        user_id = (await api.login(role=role)).user_id
    resources = api.app.settings["resources"]
    return await staff_accounts.create_staff(
        resources, login=f"{role}-{uuid.uuid4().hex[:8]}", password=PASSWORD, user_id=user_id,
        totp=totp)


def session_cookie(reply) -> str:
    for header in reply.headers.get_list("Set-Cookie"):
        if header.startswith(CONSOLE_COOKIE + "="):
            return header
    raise AssertionError("no console cookie was set")


async def sign_in(api, staff: dict, password: str = PASSWORD, otp: str | None = None
                  ) -> ConsoleSession:
    body = {"login": staff["login"], "password": password}
    if otp:
        body["otp"] = otp
    reply = await api.post("/v1/console/sessions", json=body)
    data = reply.ok(201)
    cookie = session_cookie(reply).split(";", 1)[0].split("=", 1)[1]
    return ConsoleSession(staff["login"], staff["user_id"], cookie, data["csrf_token"])


async def staff_session(api, role: str = "admin", user_id: int | None = None
                        ) -> ConsoleSession:
    return await sign_in(api, await make_staff(api, role, user_id))

"""The web console: staff sign-in sessions (/v1/console/sessions) and its pages (/console).

Sign-in puts the session's access token in an HttpOnly, SameSite=Strict cookie (Secure in
production) and replies with the CSRF token the page sends as X-CSRF-Token on every write;
the gateway accepts the cookie as authentication (gateway/handler.py). The pages are static
files from console/ served with a strict Content-Security-Policy; docs/console.md.
"""
from __future__ import annotations

import mimetypes
import pathlib
import re
import urllib.parse

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from gateway.openapi import RawBody
from pawhome.console import dashboard, staff
from pawhome.identity.tokens import CONSOLE_COOKIE
from pawhome.integrations.storage import storage_for
from pawhome.platform.errors import (
    NotFound,
    StaffAccountDisabled,
    StaffAccountLocked,
    StaffOtpRequired,
    StaffSignInFailed,
    UserBanned,
)
from settings import Settings

CONSOLE_DIR = pathlib.Path(__file__).resolve().parent.parent / "console"
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(js|css|svg|ico)$")
# No inline script or style, no eval, nothing from another origin; the page may only talk to
# this host (REST and the WebSocket) and show images/videos from here, data: and blob: URLs,
# and the media storage (COS in production, https only).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob: https:{media}; media-src 'self' blob: https:{media}; "
    "connect-src 'self'{upload}; font-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def content_security_policy(settings: Settings) -> str:
    """The console's CSP; images and videos may also come from the local media store's
    address when that is plain http (embedded and development: PUBLIC_BASE_URL), and the
    page may PUT an upload to the media storage's presigned URLs (the gateway's own upload
    URL, or the COS bucket)."""
    media = ""
    for base in (settings.media_public_base_url, settings.public_base_url):
        parts = urllib.parse.urlsplit(base or "")
        if parts.scheme == "http" and parts.netloc:
            media += f" http://{parts.netloc}"
    upload = storage_for(settings).upload_origin()
    return CONTENT_SECURITY_POLICY.format(media=media, upload=f" {upload}" if upload else "")


class SignInBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    otp: str | None = Field(None, pattern=r"^[0-9]{6}$")


class ConsoleSessionsHandler(ApiHandler):
    @endpoint(auth=False, body=SignInBody, tags=("console",), status=201,
              errors=(StaffSignInFailed, StaffOtpRequired, StaffAccountLocked,
                      StaffAccountDisabled, UserBanned),
              summary="Staff sign-in: sets the console session cookie, replies its CSRF token",
              description="The session cookie (HttpOnly, SameSite=Strict, Secure in "
                          "production) authenticates the console's requests; every write "
                          "sent with it needs the X-CSRF-Token header. Five wrong passwords "
                          "in a row lock the account for a while (429, Retry-After).")
    async def post(self) -> None:
        b = self.body
        session = await staff.sign_in(self.r, b.login.strip(), b.password, b.otp)
        self.set_cookie(CONSOLE_COOKIE, session["access_token"], path="/",
                        max_age=session["expires_in"], httponly=True, samesite="Strict",
                        secure=self.r.settings.console_cookie_is_secure)
        self.ok({"csrf_token": session["csrf_token"], "expires_in": session["expires_in"],
                 "staff": session["staff"]}, status=201)

    @endpoint(tags=("console",), errors=(NotFound,),
              summary="The signed-in staff member and the session's CSRF token")
    async def get(self) -> None:
        self.ok(await staff.current_session(self.r, self.caller))

    @endpoint(tags=("console",), errors=(NotFound,),
              summary="Sign out: the session ends on every gateway (404 for a token that is "
                      "not a console session's, which stays valid)")
    async def delete(self) -> None:
        await staff.sign_out(self.r, self.caller)
        self.clear_cookie(CONSOLE_COOKIE, path="/")
        self.ok({"signed_out": True})


class _StaticPage(ApiHandler):
    """A file of the console, with the page headers (CSP and friends)."""

    def send_file(self, path: pathlib.Path) -> None:
        if not path.is_file():
            raise NotFound("No such console file")
        for name, value in PAGE_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Security-Policy", content_security_policy(self.r.settings))
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".js":
            kind = "text/javascript"
        self.set_header("Content-Type", f"{kind}; charset=utf-8" if kind.startswith("text")
                        or kind.endswith("javascript") else kind)
        # Pages and assets change with a release: revalidate each time (small files).
        self.set_header("Cache-Control", "no-cache")
        self.finish(path.read_bytes())


class ConsolePageHandler(_StaticPage):
    @endpoint(auth=False, tags=("console",),
              response=RawBody("text/html", {"type": "string"}),
              summary="The web console (one page; its router shows the page in the #hash)")
    async def get(self) -> None:
        self.send_file(CONSOLE_DIR / "index.html")


class ConsoleAssetHandler(_StaticPage):
    @endpoint(auth=False, tags=("console",), errors=(NotFound,),
              response=RawBody("text/javascript", {"type": "string"}),
              summary="A script, style sheet or icon of the web console")
    async def get(self, name: str) -> None:
        if not ASSET_NAME.match(name):
            raise NotFound("No such console file")
        self.send_file(CONSOLE_DIR / "assets" / name)


class DashboardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    days: int = Field(14, ge=1, le=dashboard.MAX_DAYS)


class AdminDashboardHandler(ApiHandler):
    @endpoint(roles=("admin",), query=DashboardQuery, tags=("admin", "console"),
              summary="The dashboard: figures by day and the fleet's live state",
              description="New users, posts, paid orders and GMV (fen), appointments and pet "
                          "generations per Asia/Shanghai day of the last `days` days; "
                          "sockets per gateway, messages waiting per queue (null when the "
                          "broker does not answer), open dead letters and posts awaiting "
                          "review.")
    async def get(self) -> None:
        self.ok(await dashboard.dashboard(self.r, self.query.days))


class MerchantDashboardHandler(ApiHandler):
    @endpoint(roles=("merchant",), query=DashboardQuery, tags=("merchant", "console"),
              summary="The merchant's dashboard: its paid orders, GMV and appointments by day")
    async def get(self) -> None:
        self.ok(await dashboard.dashboard(self.r, self.query.days, merchant_id=self.user_id))

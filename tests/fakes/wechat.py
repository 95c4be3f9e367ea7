"""A fake WeChat API server: jscode2session, stable_token, getuserphonenumber, subscribe/send,
content security (msg_sec_check v2, media_check_async v2).

Login codes steer it: "code-<anything>" logs in (the same code always gives the same openid
and session_key), "invalid" -> 40029, "used" -> 40163, "ratelimit" -> 45011, "slow" -> answers
after `slow_seconds` (longer than the tests' client timeout), "malformed" -> an HTML page,
"busy" -> -1, "noopenid" -> a JSON reply without openid. Every request is recorded;
`fail_next(path, ...)` queues a canned reply for one path. subscribe/send checks field values
against WeChat's length limits (47003 when over) and answers `subscribe_errcode(key, code)`
for a template id or openid.
msg_sec_check answers by keyword in the content (`text_verdict(keyword, suggest, label)`;
"FAKE_RISKY" -> risky, "FAKE_REVIEW" -> review by default, anything else passes).
media_check_async answers a trace_id and remembers the request; a test then delivers the
verdict with `media_check_push(trace_id, ...)` -> (signed query, JSON body) for our callback.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import threading
import time
from collections import deque
from typing import Any

import tornado.web

from tests.fakes import BackgroundServer, RecordedRequest

APPID = os.environ.get("WECHAT_APPID", "wx-dev-appid")
SECRET = os.environ.get("WECHAT_SECRET", "wx-dev-secret")


def openid_for(code: str) -> str:
    return "o" + hashlib.sha256(("openid:" + code).encode()).hexdigest()[:27]


def session_key_for(code: str) -> str:
    return base64.b64encode(hashlib.sha256(("sk:" + code).encode()).digest()[:16]).decode()


class FakeWeChatState:
    """What the fake has seen and how it should answer; reset before each test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[RecordedRequest] = []
            self.stable_token_calls = 0
            self.token_expires_in = 7200
            self.token_delay = 0.0  # seconds stable_token takes (widens races in tests)
            self.slow_seconds = 2.0
            self.valid_tokens: set[str] = set()
            self.expired_tokens: set[str] = set()
            self.token_sequence = 0
            # Token names differ between tests, so nothing keyed by a token leaks across.
            self.token_nonce = secrets.token_hex(3)
            self.repeat_token = False  # stable_token hands out the current token again
            self.canned: dict[str, deque] = {}
            self.phone_numbers: dict[str, dict[str, str]] = {}
            self.sent_messages: list[dict[str, Any]] = []
            # template id or openid -> the errcode subscribe/send answers for it
            self.subscribe_errcodes: dict[str, int] = {}
            # content security: keyword -> (suggest, label); trace_id -> media check request
            self.text_verdicts: dict[str, tuple[str, int]] = {
                "FAKE_RISKY": ("risky", 20002), "FAKE_REVIEW": ("review", 21000)}
            self.media_checks: dict[str, dict[str, Any]] = {}

    # -- steering from tests -------------------------------------------------------------
    def fail_next(self, path: str, status: int = 200, body: Any = None, times: int = 1) -> None:
        """Answer the next `times` requests to `path` with this status and body."""
        with self.lock:
            queue = self.canned.setdefault(path, deque())
            for _ in range(times):
                queue.append((status, body))

    def expire_token(self, token: str) -> None:
        """WeChat now answers 42001 (expired) to calls made with this token."""
        with self.lock:
            self.expired_tokens.add(token)

    def subscribe_errcode(self, key: str, errcode: int | None) -> None:
        """subscribe/send answers `errcode` for this template id or openid (None: stop)."""
        with self.lock:
            if errcode is None:
                self.subscribe_errcodes.pop(key, None)
            else:
                self.subscribe_errcodes[key] = errcode

    def text_verdict(self, keyword: str, suggest: str, label: int = 21000) -> None:
        """msg_sec_check answers `suggest` for content containing `keyword`."""
        with self.lock:
            self.text_verdicts[keyword] = (suggest, label)

    def media_check_push(self, trace_id: str, suggest: str = "pass", label: int = 100,
                         token: str = "dev-push-token", errcode: int = 0
                         ) -> tuple[dict[str, str], dict[str, Any]]:
        """The `wxa_media_check` push WeChat would send for this check: (query with a valid
        signature for `token`, JSON body)."""
        with self.lock:
            request = self.media_checks.get(trace_id, {})
        timestamp, nonce = str(int(time.time())), secrets.token_hex(6)
        signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
        body = {"ToUserName": "gh_fake", "FromUserName": request.get("openid", "o-system"),
                "CreateTime": int(time.time()), "MsgType": "event", "Event": "wxa_media_check",
                "appid": APPID, "trace_id": trace_id, "version": 2, "errcode": errcode,
                "errmsg": "ok" if not errcode else "error",
                "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest,
                            "label": label, "prob": 90}],
                "result": {"suggest": suggest, "label": label}}
        return {"signature": signature, "timestamp": timestamp, "nonce": nonce}, body

    def set_phone(self, code: str, phone: str, country: str = "86") -> None:
        with self.lock:
            self.phone_numbers[code] = {"purePhoneNumber": phone, "countryCode": country}

    # -- reading in tests ----------------------------------------------------------------
    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    @property
    def stable_token_bodies(self) -> list[Any]:
        return [r.body for r in self.requests_to("/cgi-bin/stable_token")]


class FakeHandler(tornado.web.RequestHandler):
    def initialize(self, state: FakeWeChatState) -> None:
        self.state = state

    def record(self) -> Any:
        try:
            body = json.loads(self.request.body) if self.request.body else None
        except ValueError:
            body = self.request.body.decode("utf-8", "replace")
        query = {k: v[-1].decode() for k, v in self.request.query_arguments.items()}
        with self.state.lock:
            self.state.requests.append(RecordedRequest(
                self.request.method, self.request.path, query, body,
                dict(self.request.headers)))
        return body

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        if isinstance(data, (dict, list)):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(data))
        else:
            self.set_header("Content-Type", "text/html")
            self.finish(data if data is not None else "")

    def canned(self) -> bool:
        with self.state.lock:
            queue = self.state.canned.get(self.request.path)
            item = queue.popleft() if queue else None
        if item is None:
            return False
        status, body = item
        self.reply(body, status)
        return True

    def token_error(self) -> dict | None:
        token = self.get_query_argument("access_token", "")
        with self.state.lock:
            if token in self.state.expired_tokens:
                return {"errcode": 42001, "errmsg": "access_token expired"}
            if token not in self.state.valid_tokens:
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
        return None


class JsCodeToSession(FakeHandler):
    async def get(self) -> None:
        self.record()
        if self.canned():
            return
        if self.get_query_argument("appid", "") != APPID or \
                self.get_query_argument("secret", "") != SECRET:
            return self.reply({"errcode": 40013, "errmsg": "invalid appid"})
        code = self.get_query_argument("js_code", "")
        if code == "invalid" or not code:
            return self.reply({"errcode": 40029, "errmsg": "invalid code"})
        if code == "used":
            return self.reply({"errcode": 40163, "errmsg": "code been used"})
        if code == "ratelimit":
            return self.reply({"errcode": 45011, "errmsg": "api minute-quota reach limit"})
        if code == "busy":
            return self.reply({"errcode": -1, "errmsg": "system error"})
        if code == "malformed":
            return self.reply("<html><body>502 Bad Gateway</body></html>")
        if code == "noopenid":
            return self.reply({"session_key": session_key_for(code)})
        if code == "slow":
            await asyncio.sleep(self.state.slow_seconds)
        self.reply({"openid": openid_for(code), "session_key": session_key_for(code)})


class StableToken(FakeHandler):
    async def post(self) -> None:
        body = self.record()
        with self.state.lock:
            self.state.stable_token_calls += 1
            delay = self.state.token_delay
        if delay:
            await asyncio.sleep(delay)
        if self.canned():
            return
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential" \
                or body.get("appid") != APPID or body.get("secret") != SECRET:
            return self.reply({"errcode": 40013, "errmsg": "invalid appid"})
        with self.state.lock:
            if not (self.state.repeat_token and self.state.token_sequence):
                self.state.token_sequence += 1
            token = f"fake-token-{self.state.token_nonce}-{self.state.token_sequence}"
            self.state.valid_tokens.add(token)
            expires_in = self.state.token_expires_in
        self.reply({"access_token": token, "expires_in": expires_in})


class PhoneNumber(FakeHandler):
    async def post(self) -> None:
        body = self.record()
        if self.canned():
            return
        error = self.token_error()
        if error:
            return self.reply(error)
        code = body.get("code", "") if isinstance(body, dict) else ""
        if code == "invalid" or not code:
            return self.reply({"errcode": 40029, "errmsg": "invalid code"})
        with self.state.lock:
            known = self.state.phone_numbers.get(code)
        if known is None:
            digits = str(int(hashlib.sha256(code.encode()).hexdigest(), 16))[-8:]
            known = {"purePhoneNumber": "139" + digits, "countryCode": "86"}
        pure, country = known["purePhoneNumber"], known["countryCode"]
        self.reply({"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": pure if country == "86" else f"+{country}{pure}",
            "purePhoneNumber": pure, "countryCode": country,
            "watermark": {"timestamp": 1700000000, "appid": APPID}}})


class SubscribeSend(FakeHandler):
    async def post(self) -> None:
        body = self.record()
        if self.canned():
            return
        error = self.token_error()
        if error:
            return self.reply(error)
        if not isinstance(body, dict) or not body.get("touser") or not body.get("template_id"):
            return self.reply({"errcode": 47003, "errmsg": "argument invalid!"})
        with self.state.lock:
            errcode = self.state.subscribe_errcodes.get(body["template_id"]) or \
                self.state.subscribe_errcodes.get(body["touser"])
        if errcode:
            return self.reply({"errcode": errcode, "errmsg": f"fake error {errcode}"})
        problem = subscribe_data_problem(body.get("data", {}))
        if problem:
            return self.reply({"errcode": 47003, "errmsg": f"argument invalid! {problem}"})
        with self.state.lock:
            self.state.sent_messages.append(body)
        self.reply({"errcode": 0, "errmsg": "ok", "msgid": len(self.state.sent_messages)})


_SCENES = {1, 2, 3, 4}


class MsgSecCheck(FakeHandler):
    async def post(self) -> None:
        body = self.record()
        if self.canned():
            return
        error = self.token_error()
        if error:
            return self.reply(error)
        if not isinstance(body, dict) or body.get("version") != 2 or not body.get("openid") \
                or body.get("scene") not in _SCENES or not isinstance(body.get("content"), str):
            return self.reply({"errcode": 47001, "errmsg": "data format error"})
        suggest, label = "pass", 100
        with self.state.lock:
            for keyword, verdict in self.state.text_verdicts.items():
                if keyword in body["content"]:
                    suggest, label = verdict
                    if suggest == "risky":
                        break
        self.reply({"errcode": 0, "errmsg": "ok", "trace_id": secrets.token_hex(12),
                    "result": {"suggest": suggest, "label": label},
                    "detail": [{"strategy": "content_model", "errcode": 0,
                                "suggest": suggest, "label": label, "prob": 90}]})


class MediaCheckAsync(FakeHandler):
    async def post(self) -> None:
        body = self.record()
        if self.canned():
            return
        error = self.token_error()
        if error:
            return self.reply(error)
        if not isinstance(body, dict) or body.get("version") != 2 or not body.get("openid") \
                or body.get("scene") not in _SCENES or body.get("media_type") not in (1, 2) \
                or not str(body.get("media_url", "")).startswith(("http://", "https://")):
            return self.reply({"errcode": 47001, "errmsg": "data format error"})
        trace_id = secrets.token_hex(12)
        with self.state.lock:
            self.state.media_checks[trace_id] = body
        self.reply({"errcode": 0, "errmsg": "ok", "trace_id": trace_id})


# Length limits of subscribe-message field types, as WeChat enforces them.
_FIELD_LIMITS = {"thing": 20, "name": 10, "phrase": 5, "character_string": 32, "number": 32,
                 "letter": 32, "symbol": 5, "phone_number": 17, "car_number": 8}


def subscribe_data_problem(data: Any) -> str | None:
    """Why WeChat would refuse this `data` (47003), or None."""
    if not isinstance(data, dict):
        return "data must be an object"
    for field, item in data.items():
        if not isinstance(item, dict) or not isinstance(item.get("value"), str) \
                or not item["value"]:
            return f"data.{field}.value is missing"
        kind = field.rstrip("0123456789")
        limit = _FIELD_LIMITS.get(kind)
        value = item["value"]
        if kind == "name" and value.isascii():
            limit = 20
        if limit is not None and len(value) > limit:
            return f"data.{field}.value exceeds limit"
    return None


def make_fake_wechat_app(state: FakeWeChatState) -> tornado.web.Application:
    kw = {"state": state}
    return tornado.web.Application([
        (r"/sns/jscode2session", JsCodeToSession, kw),
        (r"/cgi-bin/stable_token", StableToken, kw),
        (r"/wxa/business/getuserphonenumber", PhoneNumber, kw),
        (r"/cgi-bin/message/subscribe/send", SubscribeSend, kw),
        (r"/wxa/msg_sec_check", MsgSecCheck, kw),
        (r"/wxa/media_check_async", MediaCheckAsync, kw),
    ])


class FakeWeChat:
    """The running fake: `base_url` for settings, `state` for tests."""

    def __init__(self) -> None:
        self.state = FakeWeChatState()
        self.server = BackgroundServer(make_fake_wechat_app(self.state), "wechat")
        self.base_url = self.server.base_url

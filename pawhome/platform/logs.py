"""Structured JSON logging with the request id attached, and PII masking.

Every log line is one JSON object. `mask_pii` is applied to whatever we log about a request:
phone numbers become 138****8000, openids are shortened, and bearer tokens, session keys and
one-time codes never reach a log at all (callers must not pass them; `redact` is the backstop).
"""
from __future__ import annotations

import contextvars
import logging
import re
import sys
import time

from pawhome.platform import codec

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_OPENID = re.compile(r"\b(o[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{18,}\b")
_SECRET = re.compile(
    r"(?i)(bearer\s+|token=|session_key[\"'=:\s]+|access_token[\"'=:\s]+|code[\"'=:\s]+)"
    r"[A-Za-z0-9._\-+/=]+")


def mask_phone(phone: str) -> str:
    return _PHONE.sub(r"\1****\3", phone)


def mask_openid(openid: str) -> str:
    return openid[:6] + "…" if len(openid) > 8 else "…"


def mask_pii(text: str) -> str:
    text = _SECRET.sub(r"\1[redacted]", text)
    text = _PHONE.sub(r"\1****\3", text)
    return _OPENID.sub(r"\1…", text)


# The last formatted second, as one tuple (one assignment: threads that log may race on it).
# One strftime per second, not per line: the access log writes a line per request.
_last_second: tuple[int, str] = (-1, "")


def timestamp(seconds: float) -> str:
    """A log line's `ts`: UTC ISO 8601 with milliseconds, e.g. 2026-11-23T08:00:52.123Z."""
    global _last_second
    second = int(seconds)
    cached_second, text = _last_second
    if second != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, text)
    return f"{text}.{int((seconds - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
            "msg": mask_pii(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = mask_pii(self.formatException(record.exc_info))
        return codec.dumps_str(out)


def setup_logging(level: str = "INFO") -> None:
    # Our JSON lines carry none of these, and collecting them costs several microseconds per
    # record (the logging HOWTO's "Optimization" section): the access log writes one record
    # per request.
    logging._srcfile = None  # caller file/line lookup
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # we write our own

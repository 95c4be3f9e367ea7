"""One JSON access-log line per request, and the per-request metrics.

Logged: request id, method, route template, path (PII-masked, no query string: it may carry
a token), status, business code, latency, user id, client IP. Never bodies, tokens, codes or
session keys.
"""
from __future__ import annotations

import logging
import time

from gateway.metrics import HTTP_ERRORS, HTTP_LATENCY, HTTP_REQUESTS
from pawhome.logs import mask_pii

log = logging.getLogger("pawhome.access")


def record(handler) -> None:
    status = handler.get_status()
    elapsed = time.perf_counter() - handler.started
    route = handler.route_template or "unmatched"
    HTTP_REQUESTS.labels(handler.request.method, route, str(status)).inc()
    HTTP_LATENCY.labels(route).observe(elapsed)
    error = handler.app_error
    if error is not None:
        HTTP_ERRORS.labels(str(error.code)).inc()
    auth = handler.auth
    log.info("request", extra={
        "request_id": getattr(handler, "request_id", "-"),
        "fields": {
            "method": handler.request.method,
            "route": route,
            "path": mask_pii(handler.request.path),
            "status": status,
            "code": error.code if error is not None else 0,
            "latency_ms": round(elapsed * 1000, 2),
            "user_id": auth.user_id if auth is not None else None,
            "ip": handler.request.remote_ip,
        },
    })

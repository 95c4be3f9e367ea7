"""Any exception as the AppError the client sees: the one mapping, used by every reply path
(the handler's error page, the idempotent replay that must store what the client got)."""
from __future__ import annotations

import redis.exceptions as redis_errors
import sqlalchemy.exc
import tornado.web

from pawhome.platform import errors
from pawhome.platform.cache import UNAVAILABLE_ERRORS
from pawhome.platform.db import is_connection_error


def to_app_error(error: BaseException | None, status: int) -> errors.AppError:
    """Any exception (or a bare status) as the AppError the client will see."""
    if isinstance(error, errors.AppError):
        return error
    if isinstance(error, tornado.web.HTTPError):
        cls = errors.for_status(error.status_code)
        return cls(error.log_message if error.status_code < 500 and error.log_message else None)
    if isinstance(error, sqlalchemy.exc.SQLAlchemyError) and is_connection_error(error):
        return errors.DatabaseUnavailable()
    if isinstance(error, redis_errors.RedisError) and isinstance(error, UNAVAILABLE_ERRORS):
        return errors.CacheUnavailable()
    if error is None:
        return errors.for_status(status)()
    return errors.InternalError()

"""Access tokens: short-lived HS256 JWTs, and the Redis revocation checks done per request.

Claims: sub (user id as string), sid (the refresh-token family, i.e. the login session), jti,
iat, exp, role. The algorithm is pinned to HS256 on decode, so alg=none and RS/HS confusion
tokens are refused. A token is dead before exp when its jti was revoked (logout), its session
family was revoked (refresh reuse, logout), or it was issued before the user's
`valid_after` mark (ban, "log out everywhere"). One MGET checks all three.
"""
from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt

from pawhome.platform.cache import Cache
from pawhome.platform.errors import CsrfTokenMissing, TokenExpired, TokenInvalid, TokenRevoked
from settings import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    role: str
    jti: str
    sid: str
    iat: float  # seconds, millisecond precision (RFC 7519 allows a non-integer NumericDate)
    exp: int

    @property
    def expires_in(self) -> int:
        return max(0, self.exp - int(time.time()))


def issue_access_token(settings: Settings, user_id: int, role: str, sid: str,
                       ttl: int | None = None) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds (ACCESS_TOKEN_TTL unless `ttl`)."""
    now = round(time.time(), 3)
    ttl = settings.access_token_ttl if ttl is None else ttl
    claims = {"sub": str(user_id), "role": role, "sid": sid, "jti": uuid.uuid4().hex,
              "iat": now, "exp": int(now) + ttl}
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM), ttl


# Verified tokens by their exact text. A client sends the same token on every request for
# its lifetime, and PyJWT's decode (base64, JSON, HMAC, claim checks) costs ~50 us, a sixth of
# a cached feed request. A hit skips only work whose result cannot change for the same string
# under the same secret; expiry is checked on every use, revocation is per request (Redis).
_VERIFIED: dict[tuple[str, str], AccessClaims] = {}
_VERIFIED_MAX = 4096

# Our access tokens are about 300 characters; a longer one is refused before any decoding
# (base64 and JSON of whatever a client sends, up to the 32 KB request-head limit).
MAX_TOKEN_LENGTH = 2048


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """The claims of a valid access token; TokenExpired / TokenInvalid otherwise."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid()
    cache_key = (settings.jwt_secret, token)
    claims = _VERIFIED.get(cache_key)
    if claims is not None:
        if claims.exp > time.time():
            return claims
        del _VERIFIED[cache_key]
        raise TokenExpired()
    claims = _decode(settings, token)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        del _VERIFIED[next(iter(_VERIFIED))]  # the oldest entry (dicts keep insertion order)
    _VERIFIED[cache_key] = claims
    return claims


def _decode(settings: Settings, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM],
                            options={"require": ["sub", "jti", "iat", "exp", "role", "sid"]})
    except jwt.ExpiredSignatureError as error:
        raise TokenExpired() from error
    except jwt.PyJWTError as error:
        raise TokenInvalid() from error
    try:
        return AccessClaims(user_id=int(claims["sub"]), role=str(claims["role"]),
                            jti=str(claims["jti"]), sid=str(claims["sid"]),
                            iat=float(claims["iat"]), exp=int(claims["exp"]))
    except (TypeError, ValueError) as error:
        raise TokenInvalid() from error


def revoked_jti_key(cache: Cache, jti: str) -> str:
    return cache.key("auth", "revoked-jti", jti)


def revoked_session_key(cache: Cache, sid: str) -> str:
    return cache.key("auth", "revoked-sid", sid)


def valid_after_key(cache: Cache, user_id: int) -> str:
    return cache.key("auth", "valid-after", user_id)


def revocation_keys(cache: Cache, claims: AccessClaims) -> list[str]:
    """The keys whose values decide whether `claims` were revoked (see check_revocation)."""
    return [revoked_jti_key(cache, claims.jti), revoked_session_key(cache, claims.sid),
            valid_after_key(cache, claims.user_id)]


def check_revocation(claims: AccessClaims, values: list) -> None:
    """Raise TokenRevoked given the values of revocation_keys (read by the caller, e.g. in
    the gateway's one admission call)."""
    jti_revoked, sid_revoked, valid_after = values
    if jti_revoked or sid_revoked:
        raise TokenRevoked()
    if valid_after is not None and claims.iat * 1000 < int(valid_after):
        raise TokenRevoked()


async def ensure_not_revoked(cache: Cache, claims: AccessClaims) -> None:
    check_revocation(claims, await cache.execute("MGET", *revocation_keys(cache, claims)))


async def revoke_access_token(cache: Cache, settings: Settings, claims: AccessClaims) -> None:
    await cache.redis.set(revoked_jti_key(cache, claims.jti), 1, ex=max(1, claims.expires_in))


async def revoke_session(cache: Cache, settings: Settings, sid: str,
                         ttl: int | None = None) -> None:
    """Every token of the session `sid` stops working; kept as long as its tokens live."""
    await cache.redis.set(revoked_session_key(cache, sid), 1,
                          ex=settings.access_token_ttl if ttl is None else ttl)


async def revoke_all_for_user(cache: Cache, settings: Settings, user_id: int) -> None:
    """Every token issued to the user until now stops working (ban, log out everywhere).

    Stored in milliseconds (iat carries milliseconds) and kept for one access-token lifetime,
    after which every older token has expired anyway.
    """
    await cache.redis.set(valid_after_key(cache, user_id), int(time.time() * 1000) + 1,
                          ex=settings.access_token_ttl + 5)


# -- console sessions (docs/console.md "Security model") ------------------------------------
# A staff member signed in to the web console holds an access token of the user the staff
# account maps to, in an HttpOnly SameSite=Strict cookie instead of an Authorization header.
# Its session id starts with CONSOLE_SID_PREFIX, so a token issued to the app is never taken
# from a cookie. Every write sent with the cookie must carry the session's CSRF token in a
# header: a value derived from the session id and the secret, which the page reads from the
# sign-in reply (a foreign page can neither read it nor, with SameSite=Strict, send the cookie).

CONSOLE_COOKIE = "pawhome_console"
CONSOLE_CSRF_HEADER = "X-CSRF-Token"
CONSOLE_SID_PREFIX = "console."
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def console_csrf_token(settings: Settings, sid: str) -> str:
    """The CSRF token of console session `sid` (HMAC-SHA256 under the JWT secret)."""
    return hmac.new(settings.jwt_secret.encode(), b"console-csrf:" + sid.encode(),
                    hashlib.sha256).hexdigest()


def decode_console_cookie(settings: Settings, token: str, method: str,
                          csrf_header: str) -> AccessClaims:
    """The claims of a console session cookie; TokenInvalid when the token is not a console
    session's, Forbidden when a write lacks the session's CSRF token (revocation is checked
    by the caller, as for a bearer token)."""
    claims = decode_access_token(settings, token)
    if not claims.sid.startswith(CONSOLE_SID_PREFIX):
        raise TokenInvalid()
    if method.upper() not in SAFE_METHODS and not hmac.compare_digest(
            csrf_header.encode(), console_csrf_token(settings, claims.sid).encode()):
        raise CsrfTokenMissing()
    return claims

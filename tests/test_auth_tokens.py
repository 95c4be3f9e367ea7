"""Access tokens and sessions: hostile tokens, refresh rotation and reuse, logout."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from sqlalchemy import select, update

from models.users import RefreshToken
from pawhome.identity.auth import hash_refresh_token


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(user_id: int, **over) -> dict:
    now = time.time()
    claims = {"sub": str(user_id), "role": "user", "sid": uuid.uuid4().hex,
              "jti": uuid.uuid4().hex, "iat": now, "exp": int(now) + 600}
    claims.update(over)
    return claims


def hand_signed(header: dict, claims: dict, key: bytes | None, digest=hashlib.sha256) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = b64(hmac.new(key, signing_input.encode(), digest).digest()) if key else ""
    return signing_input + "." + signature


async def me(api, token):
    return await api.get("/v1/users/me", token=token)


@pytest.mark.gen_test
async def test_expired_token_is_401_token_expired(api, settings):
    user = await api.login()
    token = jwt.encode(claims_for(user.user_id, iat=time.time() - 7200,
                                  exp=int(time.time()) - 10), settings.jwt_secret, "HS256")
    (await me(api, token)).error(401, code=40101)


@pytest.mark.gen_test
async def test_token_signed_with_another_key_is_401_invalid(api):
    user = await api.login()
    forged = jwt.encode(claims_for(user.user_id), "not-our-secret-" * 3, "HS256")
    (await me(api, forged)).error(401, code=40102)


@pytest.mark.gen_test
async def test_tampered_payload_is_401_invalid(api):
    alice, bob = await api.login(), await api.login()
    header, _payload, signature = alice.token.split(".")
    claims = jwt.decode(alice.token, options={"verify_signature": False})
    claims["sub"] = str(bob.user_id)
    forged = ".".join([header, b64(json.dumps(claims).encode()), signature])
    (await me(api, forged)).error(401, code=40102)
    (await me(api, alice.token)).ok()


@pytest.mark.gen_test
async def test_alg_none_token_is_401_invalid(api):
    user = await api.login()
    unsigned = hand_signed({"alg": "none", "typ": "JWT"}, claims_for(user.user_id), None)
    (await me(api, unsigned)).error(401, code=40102)
    (await me(api, unsigned.rstrip("."))).error(401, code=40102)


@pytest.mark.gen_test
async def test_other_hmac_algorithms_with_our_key_are_refused(api, settings):
    user = await api.login()
    for alg, digest in (("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        token = hand_signed({"alg": alg, "typ": "JWT"}, claims_for(user.user_id),
                            settings.jwt_secret.encode(), digest)
        (await me(api, token)).error(401, code=40102)


@pytest.mark.gen_test
async def test_rs256_header_with_an_hmac_signature_is_refused(api, settings):
    user = await api.login()
    token = hand_signed({"alg": "RS256", "typ": "JWT"}, claims_for(user.user_id),
                        settings.jwt_secret.encode())
    (await me(api, token)).error(401, code=40102)


@pytest.mark.gen_test
async def test_token_missing_a_claim_is_refused(api, settings):
    user = await api.login()
    claims = claims_for(user.user_id)
    del claims["sid"]
    (await me(api, jwt.encode(claims, settings.jwt_secret, "HS256"))).error(401, code=40102)


@pytest.mark.gen_test
@pytest.mark.parametrize("header", ["Bearer", "Bearer   ", "Basic abc", "Bearer a.b.c",
                                    "Bearer " + "x" * 5000])
async def test_garbage_authorization_headers_are_401(api, header):
    reply = await api.get("/v1/users/me", headers={"Authorization": header})
    assert reply.status == 401 and reply.json["code"] in (40100, 40102)


# -- session info, refresh rotation ------------------------------------------------------

@pytest.mark.gen_test
async def test_session_reports_user_role_and_expiry(api, settings):
    user = await api.login(role="merchant")
    data = (await api.get("/v1/auth/session", token=user.token)).ok()
    assert data["user_id"] == user.user_id and data["role"] == "merchant"
    assert settings.access_token_ttl - 5 <= data["expires_in"] <= settings.access_token_ttl
    assert data["session_id"]


async def refresh(api, token):
    return await api.post("/v1/auth/refresh", json={"refresh_token": token})


@pytest.mark.gen_test
async def test_refresh_rotates_the_pair_within_the_same_session(api):
    user = await api.login()
    sid = (await api.get("/v1/auth/session", token=user.token)).ok()["session_id"]
    pair = (await refresh(api, user.refresh_token)).ok()
    assert pair["refresh_token"] != user.refresh_token and pair["user_id"] == user.user_id
    info = (await api.get("/v1/auth/session", token=pair["access_token"])).ok()
    assert info["session_id"] == sid
    again = (await refresh(api, pair["refresh_token"])).ok()
    (await me(api, again["access_token"])).ok()


@pytest.mark.gen_test
async def test_second_refresh_with_same_token_revokes_the_family(api, resources):
    user = await api.login()
    pair = (await refresh(api, user.refresh_token)).ok()
    (await refresh(api, user.refresh_token)).error(401, code=40104)
    # Everything in the session is dead: both access tokens and the newest refresh token.
    (await me(api, user.token)).error(401, code=40103)
    (await me(api, pair["access_token"])).error(401, code=40103)
    (await refresh(api, pair["refresh_token"])).error(401, code=40103)
    async with resources.db.session() as session:
        row = (await session.execute(select(RefreshToken).where(
            RefreshToken.token_hash == hash_refresh_token(user.refresh_token)))).scalar_one()
        family = (await session.execute(select(RefreshToken).where(
            RefreshToken.family_id == row.family_id))).scalars().all()
    assert len(family) == 2 and all(r.revoked_at is not None for r in family)


@pytest.mark.gen_test
async def test_reuse_leaves_the_users_other_sessions_alone(api):
    phone = await api.login()
    laptop = await api.login(openid=phone.openid)
    (await refresh(api, phone.refresh_token)).ok()
    (await refresh(api, phone.refresh_token)).error(401, code=40104)
    (await me(api, laptop.token)).ok()
    (await refresh(api, laptop.refresh_token)).ok()


@pytest.mark.gen_test
async def test_concurrent_double_refresh_lets_exactly_one_win(api, resources):
    user = await api.login()
    replies = await asyncio.gather(*(refresh(api, user.refresh_token) for _ in range(2)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 401]
    loser = next(r for r in replies if r.status == 401)
    assert loser.json["code"] == 40104
    async with resources.db.session() as session:
        row = (await session.execute(select(RefreshToken).where(
            RefreshToken.token_hash == hash_refresh_token(user.refresh_token)))).scalar_one()
        family = (await session.execute(select(RefreshToken).where(
            RefreshToken.family_id == row.family_id))).scalars().all()
    assert len(family) == 2  # one token minted from the consumed one, never two


@pytest.mark.gen_test
async def test_unknown_refresh_token_is_401(api):
    (await refresh(api, "no-such-token")).error(401, code=40102)
    (await api.post("/v1/auth/refresh", json={})).error(422, field="refresh_token")
    (await api.post("/v1/auth/refresh", json={"refresh_token": "x" * 300})).error(
        422, field="refresh_token")


@pytest.mark.gen_test
async def test_expired_refresh_token_is_401_expired(api, resources):
    user = await api.login()
    async with resources.db.session() as session, session.begin():
        await session.execute(update(RefreshToken).where(
            RefreshToken.token_hash == hash_refresh_token(user.refresh_token)).values(
            expires_at=dt.datetime(2000, 1, 1)))
    (await refresh(api, user.refresh_token)).error(401, code=40101)


# -- logout -------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_logout_ends_the_session_and_nothing_else(api):
    user = await api.login()
    other = await api.login(openid=user.openid)
    (await api.post("/v1/auth/logout", token=user.token)).ok()
    (await me(api, user.token)).error(401, code=40103)
    (await refresh(api, user.refresh_token)).error(401, code=40103)
    (await me(api, other.token)).ok()


@pytest.mark.gen_test
async def test_logout_also_kills_tokens_refreshed_earlier_in_the_session(api):
    user = await api.login()
    pair = (await refresh(api, user.refresh_token)).ok()
    (await api.post("/v1/auth/logout", token=pair["access_token"])).ok()
    (await me(api, user.token)).error(401, code=40103)
    (await me(api, pair["access_token"])).error(401, code=40103)
    (await refresh(api, pair["refresh_token"])).error(401, code=40103)


@pytest.mark.gen_test
async def test_logout_needs_a_token(api):
    (await api.post("/v1/auth/logout")).error(401, code=40100)

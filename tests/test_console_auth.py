"""Console sign-in: staff accounts with argon2 passwords, lockout, optional TOTP; the session
cookie authenticates like a token, writes need the CSRF header, sign-out and disabling end
the session everywhere."""
from __future__ import annotations

import pyotp
import pytest

from pawhome.console import manage
from pawhome.console import staff as staff_accounts
from pawhome.identity.tokens import CONSOLE_COOKIE
from pawhome.platform.errors import StaffUserNotEligible
from tests.console_support import PASSWORD, make_staff, session_cookie, sign_in, staff_session


@pytest.mark.gen_test(timeout=30)
async def test_sign_in_sets_an_httponly_strict_cookie_and_replies_only_the_csrf_token(api):
    staff = await make_staff(api, "admin")
    reply = await api.post("/v1/console/sessions",
                           json={"login": staff["login"], "password": PASSWORD})
    data = reply.ok(201)
    assert set(data) == {"csrf_token", "expires_in", "staff"}
    assert data["staff"]["role"] == "admin" and data["staff"]["user_id"] == staff["user_id"]
    cookie = session_cookie(reply).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # development mode; production sets Secure (test below)
    assert "access_token" not in reply.body.decode()


def test_the_cookie_is_secure_in_production_unless_told_otherwise():
    from settings import Settings
    assert Settings(mode="production").console_cookie_is_secure
    assert not Settings(mode="embedded").console_cookie_is_secure
    assert Settings(mode="development", console_cookie_secure=True).console_cookie_is_secure


def test_the_pages_may_upload_only_to_the_media_storage_they_were_given():
    """connect-src: the page's own origin plus where presigned PUTs go (the gateway's upload
    URL with local storage, the bucket with COS, its custom domain when set); nothing else."""
    from handlers.console import content_security_policy
    from settings import Settings

    def connect_src(**values) -> list[str]:
        csp = content_security_policy(Settings(**values))
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        return directives["connect-src"].split()

    assert connect_src(media_storage="local", public_base_url="https://api.pawhome.cn/") == [
        "'self'", "https://api.pawhome.cn"]
    assert connect_src(media_storage="cos", cos_bucket="pawhome-1250000000",
                       cos_region="ap-shanghai", cos_secret_id="id", cos_secret_key="key") == [
        "'self'", "https://pawhome-1250000000.cos.ap-shanghai.myqcloud.com"]
    assert connect_src(media_storage="cos", cos_domain="media.pawhome.cn", cos_secret_id="id",
                       cos_secret_key="key") == ["'self'", "https://media.pawhome.cn"]


@pytest.mark.gen_test(timeout=30)
async def test_the_cookie_authenticates_as_the_mapped_user(api):
    me = await staff_session(api, "admin")
    data = (await api.get("/v1/users/me", headers=me.headers(csrf=False))).ok()
    assert data["id"] == me.user_id
    current = (await api.get("/v1/console/sessions", headers=me.headers(csrf=False))).ok()
    assert current["csrf_token"] == me.csrf and current["staff"]["login"] == me.login
    (await api.get("/v1/admin/users", headers=me.headers(csrf=False))).ok()


@pytest.mark.gen_test(timeout=30)
async def test_a_write_with_the_cookie_needs_the_sessions_csrf_token(api):
    me = await staff_session(api, "admin")
    victim = await api.login()
    path = f"/v1/admin/users/{victim.user_id}/ban"
    cookie_only = me.headers(csrf=False)
    (await api.post(path, json={"reason": "x"}, headers=cookie_only)).error(403, code=40320)
    wrong = {**cookie_only, "X-CSRF-Token": "0" * 64}
    (await api.post(path, json={"reason": "x"}, headers=wrong)).error(403, code=40320)
    other = await staff_session(api, "admin")  # another session's token is no good either
    stolen = {**cookie_only, "X-CSRF-Token": other.csrf}
    (await api.post(path, json={"reason": "x"}, headers=stolen)).error(403, code=40320)
    (await api.post(path, json={"reason": "spam"}, headers=me.headers())).ok()


@pytest.mark.gen_test(timeout=30)
async def test_an_app_token_is_not_taken_from_a_cookie(api):
    admin = await api.login(role="admin")
    headers = {"Cookie": f"{CONSOLE_COOKIE}={admin.token}"}
    (await api.get("/v1/admin/users", headers=headers)).error(401, code=40102)
    forged = {"Cookie": f"{CONSOLE_COOKIE}=eyJhbGciOiJub25lIn0.e30."}
    (await api.get("/v1/admin/users", headers=forged)).error(401, code=40102)


@pytest.mark.gen_test(timeout=30)
async def test_wrong_password_and_unknown_login_look_the_same(api):
    staff = await make_staff(api, "admin")
    wrong = await api.post("/v1/console/sessions",
                           json={"login": staff["login"], "password": "nope nope nope"})
    unknown = await api.post("/v1/console/sessions",
                             json={"login": "nobody-here", "password": "nope nope nope"})
    assert wrong.error(401, code=40110)["message"] == unknown.error(401, code=40110)["message"]


@pytest.mark.gen_test(timeout=30)
async def test_repeated_failures_lock_the_account_even_for_the_right_password(api, settings):
    staff = await make_staff(api, "admin")
    body = {"login": staff["login"], "password": "wrong password!"}
    for _ in range(settings.console_max_failed_logins - 1):
        (await api.post("/v1/console/sessions", json=body)).error(401, code=40110)
    locked = await api.post("/v1/console/sessions", json=body)
    locked.error(429, code=42910)
    assert 0 < int(locked.headers["Retry-After"]) <= settings.console_lockout_seconds
    right = await api.post("/v1/console/sessions",
                           json={"login": staff["login"], "password": PASSWORD})
    right.error(429, code=42910)


@pytest.mark.gen_test(timeout=30)
async def test_a_success_resets_the_failure_count(api, settings):
    staff = await make_staff(api, "merchant")
    body = {"login": staff["login"], "password": "wrong password!"}
    for _ in range(settings.console_max_failed_logins - 1):
        (await api.post("/v1/console/sessions", json=body)).error(401, code=40110)
    await sign_in(api, staff)
    (await api.post("/v1/console/sessions", json=body)).error(401, code=40110)


@pytest.mark.gen_test(timeout=30)
async def test_sign_out_ends_the_session(api):
    me = await staff_session(api, "admin")
    out = await api.delete("/v1/console/sessions", headers=me.headers())
    out.ok()
    assert "max-age=0" in session_cookie(out).lower() or "expires" in session_cookie(out).lower()
    (await api.get("/v1/users/me", headers=me.headers(csrf=False))).error(401, code=40103)


@pytest.mark.gen_test(timeout=30)
async def test_sign_out_needs_the_csrf_token_too(api):
    me = await staff_session(api, "admin")
    (await api.delete("/v1/console/sessions", headers=me.headers(csrf=False))).error(403)
    (await api.get("/v1/users/me", headers=me.headers(csrf=False))).ok()


@pytest.mark.gen_test(timeout=30)
async def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(api):
    staff = await make_staff(api, "merchant")
    me = await sign_in(api, staff)
    resources = api.app.settings["resources"]
    await staff_accounts.set_disabled(resources, staff["id"], True)
    (await api.get("/v1/users/me", headers=me.headers(csrf=False))).error(401, code=40103)
    body = {"login": staff["login"], "password": PASSWORD}
    (await api.post("/v1/console/sessions", json=body)).error(403, code=40321)
    await staff_accounts.set_disabled(resources, staff["id"], False)
    await sign_in(api, staff)


@pytest.mark.gen_test(timeout=30)
async def test_merchant_staff_have_merchant_rights_only(api):
    me = await staff_session(api, "merchant")
    (await api.get("/v1/admin/users", headers=me.headers(csrf=False))).error(403, code=40300)
    (await api.get("/v1/merchant/products", headers=me.headers(csrf=False))).ok()


@pytest.mark.gen_test(timeout=30)
async def test_admin_with_totp_needs_a_current_code(api):
    staff = await make_staff(api, "admin", totp=True)
    assert staff["totp_uri"].startswith("otpauth://totp/")
    secret = pyotp.parse_uri(staff["totp_uri"]).secret
    body = {"login": staff["login"], "password": PASSWORD}
    (await api.post("/v1/console/sessions", json=body)).error(401, code=40111)
    bad = str((int(pyotp.TOTP(secret).now()) + 1) % 1_000_000).zfill(6)
    (await api.post("/v1/console/sessions", json={**body, "otp": bad})).error(401, code=40111)
    me = await sign_in(api, staff, otp=pyotp.TOTP(secret).now())
    (await api.get("/v1/admin/users", headers=me.headers(csrf=False))).ok()


@pytest.mark.gen_test(timeout=30)
async def test_staff_accounts_map_only_to_admins_and_merchants(api):
    resources = api.app.settings["resources"]
    plain = await api.login()
    with pytest.raises(StaffUserNotEligible):
        await staff_accounts.create_staff(resources, login="plain-user-staff",
                                          password=PASSWORD, user_id=plain.user_id)
    merchant = await api.login(role="merchant")
    with pytest.raises(StaffUserNotEligible):  # TOTP is for admins
        await staff_accounts.create_staff(resources, login="merchant-totp", password=PASSWORD,
                                          user_id=merchant.user_id, totp=True)


@pytest.mark.gen_test(timeout=30)
async def test_a_banned_users_staff_cannot_sign_in(api):
    staff = await make_staff(api, "merchant")
    admin = await api.login(role="admin")
    (await api.post(f"/v1/admin/users/{staff['user_id']}/ban", json={"reason": "fraud"},
                    token=admin.token)).ok()
    body = {"login": staff["login"], "password": PASSWORD}
    (await api.post("/v1/console/sessions", json=body)).error(403, code=40301)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("body,field", [
    ({"login": "a", "password": ""}, "password"),
    ({"login": "a", "password": "x" * 300}, "password"),
    ({"login": "a", "password": "x", "otp": "12ab56"}, "otp"),
    ({"login": "a", "password": "x", "role": "admin"}, "role"),
])
async def test_malformed_sign_ins_are_field_errors(api, body, field):
    (await api.post("/v1/console/sessions", json=body)).error(422, field=field)


def test_the_management_command_creates_an_account(capsys, monkeypatch):
    import asyncio
    import uuid

    from pawhome.identity import users
    from pawhome.platform.resources import Resources
    from settings import Settings

    async def merchant_user() -> int:
        resources = Resources(Settings())
        try:
            async with resources.db.session() as session, session.begin():
                user, _ = await users.get_or_create_by_openid(session, uuid.uuid4().hex)
                user.role = "merchant"
                await session.flush()
                return user.id
        finally:
            await resources.close()

    user_id = asyncio.run(merchant_user())
    login = "cli-" + uuid.uuid4().hex[:8]
    assert manage.main(["create", "--login", login, "--user-id", str(user_id)]) == 0
    out = capsys.readouterr().out
    assert f"staff account {login}" in out and "password: " in out
    assert manage.main(["create", "--login", login, "--user-id", str(user_id)]) == 1
    assert manage.main(["disable", "--login", login]) == 0


async def _upgrade(base_url: str, headers: dict[str, str]):
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    url = base_url.replace("http://", "ws://") + "/v1/ws"
    try:
        conn = await websocket_connect(HTTPRequest(url, headers=headers))
    except HTTPClientError as error:
        return error.code, None
    hello = await conn.read_message()
    conn.close()
    return 101, hello


@pytest.mark.gen_test(timeout=30)
async def test_the_socket_takes_the_console_cookie_only_from_its_own_origin(api, base_url):
    me = await staff_session(api, "admin")
    host = base_url.split("//", 1)[1]
    cookie = me.headers(csrf=False)
    status, hello = await _upgrade(base_url, {**cookie, "Origin": f"http://{host}"})
    assert status == 101 and f'"user_id":{me.user_id}' in hello.replace(" ", "")
    for origin in ("https://evil.example", f"http://{host}.evil.example", ""):
        headers = {**cookie, "Origin": origin} if origin else cookie
        status, _ = await _upgrade(base_url, headers)
        assert status == 403, origin


@pytest.mark.gen_test(timeout=30)
async def test_an_app_token_is_no_console_session_to_sign_out(api):
    """The console's sign-out ends console sessions only: an app user's bearer token gets 404
    and stays valid (the fuzz's user was signed out by it once)."""
    user = await api.login()
    (await api.delete("/v1/console/sessions", token=user.token)).error(404)
    (await api.get("/v1/users/me", token=user.token)).ok()

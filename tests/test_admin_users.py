"""Admin user management: roles enforced, search, bans that take effect at once, roles."""
from __future__ import annotations

import uuid

import pytest


async def ban(api, admin, user_id, reason="spam"):
    return await api.post(f"/v1/admin/users/{user_id}/ban", json={"reason": reason},
                          token=admin.token)


@pytest.mark.gen_test
async def test_admin_routes_need_the_admin_role(api):
    user, merchant = await api.login(), await api.login(role="merchant")
    for who in (user, merchant):
        (await api.get("/v1/admin/users", token=who.token)).error(403, code=40300)
        (await ban(api, who, user.user_id)).error(403, code=40300)
    (await api.get("/v1/admin/users")).error(401, code=40100)


@pytest.mark.gen_test
async def test_admin_searches_by_nickname_and_id_and_filters(api):
    admin = await api.login(role="admin")
    tag = uuid.uuid4().hex[:6]
    cat = await api.login()
    (await api.put("/v1/users/me", json={"nickname": f"猫{tag}"}, token=cat.token)).ok()
    dog = await api.login()
    (await api.put("/v1/users/me", json={"nickname": f"狗{tag}"}, token=dog.token)).ok()
    found = (await api.get(f"/v1/admin/users?q={tag}", token=admin.token)).ok()
    assert {i["id"] for i in found["items"]} == {cat.user_id, dog.user_id}
    assert found["total"] == 2
    by_id = (await api.get(f"/v1/admin/users?q={cat.user_id}", token=admin.token)).ok()
    assert cat.user_id in [i["id"] for i in by_id["items"]]
    (await ban(api, admin, dog.user_id)).ok()
    banned = (await api.get(f"/v1/admin/users?q={tag}&status=banned", token=admin.token)).ok()
    assert [i["id"] for i in banned["items"]] == [dog.user_id]
    admins = (await api.get("/v1/admin/users?role=admin&limit=100", token=admin.token)).ok()
    assert admin.user_id in [i["id"] for i in admins["items"]]
    assert all(i["role"] == "admin" for i in admins["items"])


@pytest.mark.gen_test
async def test_search_treats_like_wildcards_literally(api):
    admin = await api.login(role="admin")
    (await api.login())  # somebody whose nickname matches nothing below
    data = (await api.get("/v1/admin/users?q=%25%25", token=admin.token)).ok()
    assert all("%%" in i["nickname"] for i in data["items"])


@pytest.mark.gen_test
@pytest.mark.parametrize("query,field", [("status=deleted", "status"), ("role=root", "role"),
                                         ("limit=0", "limit"), ("sort=id", "sort")])
async def test_bad_admin_list_queries_are_field_errors(api, query, field):
    admin = await api.login(role="admin")
    (await api.get(f"/v1/admin/users?{query}", token=admin.token)).error(422, field=field)


@pytest.mark.gen_test
async def test_banned_users_tokens_stop_at_once_and_login_is_refused(api):
    admin, user = await api.login(role="admin"), await api.login()
    (await api.get("/v1/users/me", token=user.token)).ok()
    data = (await ban(api, admin, user.user_id, "abuse")).ok()
    assert data["status"] == "banned" and data["banned_reason"] == "abuse"
    (await api.get("/v1/users/me", token=user.token)).error(401, code=40103)
    (await api.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})).error(401)
    (await api.post("/v1/auth/dev-login", json={"openid": user.openid})).error(403, code=40301)


@pytest.mark.gen_test
async def test_unban_lets_the_user_log_in_again(api):
    admin, user = await api.login(role="admin"), await api.login()
    (await ban(api, admin, user.user_id)).ok()
    data = (await api.post(f"/v1/admin/users/{user.user_id}/unban", token=admin.token)).ok()
    assert data["status"] == "active" and data["banned_reason"] == ""
    again = await api.login(openid=user.openid)
    (await api.get("/v1/users/me", token=again.token)).ok()


@pytest.mark.gen_test
async def test_admin_cannot_ban_themselves_and_unknown_users_are_404(api):
    admin = await api.login(role="admin")
    (await ban(api, admin, admin.user_id)).error(403, code=40300)
    (await api.get("/v1/users/me", token=admin.token)).ok()
    (await ban(api, admin, 999_999_999)).error(404, code=40400)
    (await api.post(f"/v1/admin/users/{admin.user_id}/ban", json={}, token=admin.token)).error(
        422, field="reason")


@pytest.mark.gen_test
async def test_role_change_ends_old_tokens_and_refresh_carries_the_new_role(api):
    admin, user = await api.login(role="admin"), await api.login()
    data = (await api.put(f"/v1/admin/users/{user.user_id}/role", json={"role": "merchant"},
                          token=admin.token)).ok()
    assert data["role"] == "merchant"
    (await api.get("/v1/users/me", token=user.token)).error(401, code=40103)
    pair = (await api.post("/v1/auth/refresh",
                           json={"refresh_token": user.refresh_token})).ok()
    session = (await api.get("/v1/auth/session", token=pair["access_token"])).ok()
    assert session["role"] == "merchant"


@pytest.mark.gen_test
async def test_role_must_be_known_and_admins_cannot_change_their_own(api):
    admin, user = await api.login(role="admin"), await api.login()
    (await api.put(f"/v1/admin/users/{user.user_id}/role", json={"role": "root"},
                   token=admin.token)).error(422, field="role")
    (await api.put(f"/v1/admin/users/{admin.user_id}/role", json={"role": "user"},
                   token=admin.token)).error(403, code=40300)


@pytest.mark.gen_test
async def test_demoted_admin_loses_admin_routes_at_once(api):
    boss, deputy = await api.login(role="admin"), await api.login(role="admin")
    (await api.get("/v1/admin/users", token=deputy.token)).ok()
    (await api.put(f"/v1/admin/users/{deputy.user_id}/role", json={"role": "user"},
                   token=boss.token)).ok()
    (await api.get("/v1/admin/users", token=deputy.token)).error(401, code=40103)
    pair = (await api.post("/v1/auth/refresh",
                           json={"refresh_token": deputy.refresh_token})).ok()
    (await api.get("/v1/admin/users", token=pair["access_token"])).error(403, code=40300)

"""Admin view of dead letters: who may see them, paging and filtering, retry rules."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.platform import DeadLetter
from pawhome.platform.deadletters import record_dead_letter


async def _letters(resources, task_name: str, count: int) -> list[int]:
    ids = []
    async with resources.db.session() as session, session.begin():
        for n in range(count):
            letter = await record_dead_letter(
                session, task_id=uuid.uuid4().hex, task_name=task_name, args=[n, "豆豆"],
                kwargs={"attempt": n}, error="TransientError: down", traceback="Traceback ...",
                retries=2)
            ids.append(letter.id)
    return ids


@pytest.mark.gen_test
async def test_dead_letters_are_for_admins_only(api):
    (await api.get("/v1/admin/dead-letters")).error(401)
    user = await api.login()
    (await api.get("/v1/admin/dead-letters", token=user.token)).error(403, code=40300)
    (await api.post("/v1/admin/dead-letters/1/retry", token=user.token)).error(403)
    merchant = await api.login(role="merchant")
    (await api.get("/v1/admin/dead-letters", token=merchant.token)).error(403)


@pytest.mark.gen_test
async def test_dead_letters_page_newest_first_and_filter_by_task(api, resources):
    name = "tests.paged_" + uuid.uuid4().hex[:8]
    ids = await _letters(resources, name, 3)
    admin = await api.login(role="admin")
    first = (await api.get(f"/v1/admin/dead-letters?task_name={name}&limit=2",
                           token=admin.token)).ok()
    assert first["total"] == 3 and first["totalPages"] == 2 and first["limit"] == 2
    assert [item["id"] for item in first["items"]] == [ids[2], ids[1]]
    assert first["items"][0]["args"] == [2, "豆豆"] and first["items"][0]["retries"] == 2
    second = (await api.get(f"/v1/admin/dead-letters?task_name={name}&limit=2&page=2",
                            token=admin.token)).ok()
    assert [item["id"] for item in second["items"]] == [ids[0]]
    (await api.get("/v1/admin/dead-letters?limit=101", token=admin.token)).error(422,
                                                                                 field="limit")
    (await api.get("/v1/admin/dead-letters?state=gone", token=admin.token)).error(422,
                                                                                  field="state")


@pytest.mark.gen_test
async def test_retry_enqueues_through_the_outbox_once_and_resolves_the_letter(api, resources):
    name = "tests.retry_" + uuid.uuid4().hex[:8]
    (letter_id,) = await _letters(resources, name, 1)
    admin = await api.login(role="admin")
    reply = (await api.post(f"/v1/admin/dead-letters/{letter_id}/retry", token=admin.token)).ok()
    assert reply["id"] == letter_id and reply["resolved_at"]
    (await api.post(f"/v1/admin/dead-letters/{letter_id}/retry",
                    token=admin.token)).error(409, code=40900)

    open_page = (await api.get(f"/v1/admin/dead-letters?task_name={name}",
                               token=admin.token)).ok()
    assert open_page["total"] == 0
    resolved = (await api.get(f"/v1/admin/dead-letters?task_name={name}&state=resolved",
                              token=admin.token)).ok()
    assert [item["id"] for item in resolved["items"]] == [letter_id]
    async with resources.db.session() as session:
        letter = await session.get(DeadLetter, letter_id)
        assert letter.resolved_at is not None


@pytest.mark.gen_test
async def test_retry_of_unknown_letter_is_404(api):
    admin = await api.login(role="admin")
    (await api.post("/v1/admin/dead-letters/999999999/retry", token=admin.token)).error(404)
    (await api.post("/v1/admin/dead-letters/99999999999999999999/retry",
                    token=admin.token)).error(404)


@pytest.mark.gen_test
async def test_same_task_failing_again_updates_its_open_letter(resources):
    task_id = uuid.uuid4().hex
    for retries in (1, 2):
        async with resources.db.session() as session, session.begin():
            await record_dead_letter(session, task_id=task_id, task_name="tests.again",
                                     args=[], kwargs={}, error=f"E{retries}", traceback="",
                                     retries=retries)
    async with resources.db.session() as session:
        letters = (await session.execute(
            select(DeadLetter).where(DeadLetter.task_id == task_id))).scalars().all()
    assert len(letters) == 1 and letters[0].retries == 2 and letters[0].error == "E2"

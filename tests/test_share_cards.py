"""Post and pet cards in direct messages: shown with their details, and never to someone who
could not see what they show."""
import uuid

import pytest

from tests.interactions_support import block, follow_row, make_post


async def _conversation(api, sender, recipient) -> int:
    return (await api.post("/v1/conversations", json={"to_user_id": recipient.user_id},
                           token=sender.token)).ok()["id"]


async def _share(api, sender, conversation: int, kind: str, target_id: int):
    return await api.post(f"/v1/conversations/{conversation}/messages", token=sender.token,
                          json={"client_msg_id": uuid.uuid4().hex, "kind": "share",
                                "card": {"kind": kind, "id": target_id}})


@pytest.mark.gen_test
async def test_a_public_post_card_carries_its_title_and_author(api, resources):
    author, sender, recipient = await api.login(), await api.login(), await api.login()
    post_id = await make_post(resources, author.user_id, text="柯基掉毛怎么办")
    conversation = await _conversation(api, sender, recipient)
    (await _share(api, sender, conversation, "post", post_id)).ok()
    [message] = (await api.get(f"/v1/conversations/{conversation}/messages",
                               token=recipient.token)).ok()["items"]
    card = message["content"]["card"]
    assert card["kind"] == "post" and card["id"] == post_id
    assert card["title"].startswith("柯基") and card["author"]["id"] == author.user_id


@pytest.mark.gen_test
async def test_a_followers_only_post_cannot_be_shared_with_a_non_follower(api, resources):
    author, fan, stranger = await api.login(), await api.login(), await api.login()
    await follow_row(resources, fan.user_id, author.user_id)
    post_id = await make_post(resources, author.user_id, visibility="followers",
                              text="只给粉丝看")
    conversation = await _conversation(api, fan, stranger)
    refused = (await _share(api, fan, conversation, "post", post_id)).error(
        422, code=42210, field="card.id")
    assert "只给粉丝看" not in str(refused)
    listed = (await api.get(f"/v1/conversations/{conversation}/messages",
                            token=stranger.token)).ok()["items"]
    assert listed == []


@pytest.mark.gen_test
async def test_a_post_the_sender_cannot_see_does_not_exist(api, resources):
    author, sender, recipient = await api.login(), await api.login(), await api.login()
    private = await make_post(resources, author.user_id, visibility="private")
    conversation = await _conversation(api, sender, recipient)
    (await _share(api, sender, conversation, "post", private)).error(404)


@pytest.mark.gen_test
async def test_pet_cards_show_the_pet_unless_a_block_hides_its_owner(api, resources):
    owner, sender, recipient = await api.login(), await api.login(), await api.login()
    pet = (await api.post("/v1/pets", json={"name": "豆豆", "species": "dog",
                                            "breed": "柯基"}, token=owner.token)).ok(201)
    conversation = await _conversation(api, sender, recipient)
    (await _share(api, sender, conversation, "pet", pet["id"])).ok()
    [message] = (await api.get(f"/v1/conversations/{conversation}/messages",
                               token=recipient.token)).ok()["items"]
    assert message["content"]["card"]["name"] == "豆豆"
    await block(resources, owner.user_id, recipient.user_id)
    (await _share(api, sender, conversation, "pet", pet["id"])).error(
        422, code=42210, field="card.id")
    (await api.delete(f"/v1/pets/{pet['id']}", token=owner.token))
    (await _share(api, sender, conversation, "pet", pet["id"])).error(404)

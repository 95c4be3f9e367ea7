"""The event-contract helper itself: it sees exactly a write's events and checks schemas."""
import uuid

import pytest
from pydantic import BaseModel, ConfigDict

from pawhome.platform.events import emit_to_user, register_event_schema
from tests.event_contract import assert_events_valid, capture_events, types_of


class CounterSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    value: int


register_event_schema("test.counter_set", CounterSet)


def _apply(state: dict, events: list[dict]) -> dict:
    state = dict(state)
    for event in events:
        state[event["data"]["name"]] = event["data"]["value"]
    return state


@pytest.mark.gen_test
async def test_captured_events_are_the_writes_events_and_replay_the_change(app, resources):
    user = 4 * 10**9 + uuid.uuid4().int % 10**8
    async with resources.db.session() as session, session.begin():
        emit_to_user(session, user, "test.counter_set", {"name": "a", "value": 1})
    before = {"a": 1}
    async with capture_events(app, user) as captured:
        async with resources.db.session() as session, session.begin():
            emit_to_user(session, user, "test.counter_set", {"name": "a", "value": 2})
            emit_to_user(session, user, "test.counter_set", {"name": "b", "value": 5})
    events = await captured.events()
    assert types_of(events) == ["test.counter_set", "test.counter_set"]
    assert_events_valid(events)
    assert _apply(before, events) == {"a": 2, "b": 5}


@pytest.mark.gen_test
async def test_an_event_without_a_schema_or_with_bad_data_fails_the_check(app, resources):
    user = 4 * 10**9 + uuid.uuid4().int % 10**8
    async with capture_events(app, user) as captured:
        async with resources.db.session() as session, session.begin():
            emit_to_user(session, user, "test.unregistered", {"x": 1})
    with pytest.raises(AssertionError):
        assert_events_valid(await captured.events())
    with pytest.raises(ValueError):
        assert_events_valid([{"id": "1", "type": "test.counter_set", "ts": 0,
                              "data": {"name": "a", "value": "not a number"}}])

"""The hostile-input gate: schemathesis fuzzes every operation of the served OpenAPI document
(GET /v1/openapi.json) against a live gateway, logged in, and fails on any 5xx, any reply
outside its documented schema, status code or content type, any schema-violating request
that is accepted and any schema-valid request that is refused.

Bounded and reproducible: a fixed number of generated cases per operation (plus the
coverage phase's fixed boundary and negative cases), derandomized generation, and a time cap
per test. docs/api.md ("The fuzz gate") says how to run it alone and replay a failure.
"""
from __future__ import annotations

import copy
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import AuthContext, Case, CheckContext, Response
from schemathesis.generation.stateful.state_machine import StepInput
from schemathesis.specs.openapi.checks import ensure_resource_availability, positive_data_acceptance

from tests.conftest import REDIS_PREFIX
from tests.fuzz_support import (
    FuzzGateway,
    Seed,
    free_address_quota,
    free_pet_quota,
    free_shop_quota,
    publish,
    seed,
)

MAX_EXAMPLES = 20  # generated cases per operation in the fuzzing phase
STATEFUL_SCENARIOS = 30  # call sequences per family of linked operations ...
STATEFUL_STEPS = 8  # ... of at most this many calls
DICTIONARY_PROBABILITY = 0.7  # how often a seeded id stands in for a generated one
TRACE = os.environ.get("FUZZ_TRACE")  # a file: one "METHOD /path status" line per request


@pytest.fixture(scope="module")
def fuzz_world(private_database):
    gateway = FuzzGateway(private_database, REDIS_PREFIX + "fuzz:")
    try:
        yield gateway, seed(gateway)
    finally:
        gateway.stop()


def _config(world: Seed) -> schemathesis.Config:
    """Seeded ids stand in for generated ones: user operations aim at the fuzzing user's
    world, DELETEs at rows seeded to be deleted (so that the rest of the run still has its
    posts), admin operations only at the victim's rows, and user bans and role changes only
    at the victim (a generated id would sooner or later be the fuzzing user's own)."""
    dictionaries: dict[str, Any] = {}

    def bind(ids: dict[str, list[Any]], group: str, probability: float) -> dict[str, Any]:
        parameters = {}
        for name, values in ids.items():
            dictionaries[f"{group}_{name}"] = {"values": values}
            location = BODY_PARAMETERS.get(name, "path")
            parameters[f"{location}.{name}"] = {"dictionary": f"{group}_{name}",
                                                "probability": probability}
        return parameters

    return schemathesis.Config.from_dict({
        "seed": 20260901,
        "parameters": bind(world.ids, "seeded", DICTIONARY_PROBABILITY),
        "operations": [
            {"include-method": "DELETE", "exclude-path-regex": "^/v1/(admin|users/me)/",
             "parameters": bind(world.doomed_ids, "doomed", DICTIONARY_PROBABILITY)},
            {"include-path-regex": "^/v1/admin/", "exclude-path-regex": "^/v1/admin/users/",
             "parameters": bind(world.admin_ids, "admin", 1.0)},
            {"include-path-regex": "^/v1/admin/users/.+",
             "parameters": {"path.user_id": world.victim.user_id}},
            # DELETE /v1/conversations/{id} hides the conversation for the caller, as POST
            # .../hide does: it stays readable (hidden: true) and comes back with the next
            # message, so reading it after the DELETE is no use after free.
            {"include-path-regex": r"^/v1/conversations/\{",
             "checks": {"use_after_free": {"enabled": False}}},
            # For the same reason a message sent before that DELETE is gone for its sender
            # (404 on recall, as in the list), though it was "just created".
            {"include-path-regex": r"^/v1/conversations/\{[^}]+\}/messages/\{[^}]+\}/recall$",
             "checks": {"created_resources_are_found": {"enabled": False}}},
        ],
        "dictionaries": dictionaries,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
        "checks": {"enabled": True},
        "output": {"sanitization": {"enabled": False}},
        "cache": {"enabled": False},  # no replay of earlier runs' failures: every run alike
        # The stateful phase follows the document's own links only, not links schemathesis
        # guesses (it linked POST /v1/posts to the admin take-down, then found the post gone).
        "phases": {"stateful": {"inference": {"algorithms": []}}},
    })


# Seeded values that go in request bodies (the rest are path parameters).
BODY_PARAMETERS = {name: "body" for name in ("refresh_token", "to_user_id", "reply_to_comment_id",
                                             "target_id", "content_type", "size")}


@pytest.fixture
def fuzz_schema(fuzz_world):
    """The document the fuzz gateway serves, set up to call it as the seeded users."""
    gateway, world = fuzz_world
    return _prepared(schemathesis.openapi.from_url(gateway.base_url + "/v1/openapi.json",
                                                   config=_config(world)), gateway, world)


def _prepared(loaded: Any, gateway: FuzzGateway, world: Seed) -> Any:
    loaded.config.update(base_url=gateway.base_url)

    @loaded.auth(refresh_interval=None)
    class AsWho:
        """The fuzzing user everywhere but /v1/admin/ (the admin), /v1/merchant/ (the
        merchant) and logout (a session of its own each time, so the user's token stays
        valid for the rest of the run)."""

        def get(self, case: Case, context: AuthContext) -> str:
            if case.path.startswith("/v1/admin/"):
                return world.admin.token
            if case.path.startswith("/v1/merchant/") and world.merchant is not None:
                return world.merchant.token
            if case.path == "/v1/auth/logout":
                reply = gateway.client.post("/v1/auth/dev-login",
                                            json={"openid": world.user.openid})
                return reply.json()["data"]["access_token"]
            return world.user.token

        def set(self, case: Case, token: str, context: AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    return loaded


def _family(document: dict[str, Any], pattern: str) -> dict[str, Any]:
    """The document with only the paths matching `pattern`, and the links between them."""
    family = copy.deepcopy(document)
    family["paths"] = {p: ops for p, ops in family["paths"].items() if re.search(pattern, p)}
    kept = {op["operationId"] for ops in family["paths"].values() for op in ops.values()
            if isinstance(op, dict) and "operationId" in op}
    for ops in family["paths"].values():
        for op in ops.values():
            for reply in op.get("responses", {}).values() if isinstance(op, dict) else ():
                links = reply.get("links") if isinstance(reply, dict) else None
                if links:
                    reply["links"] = {n: link for n, link in links.items()
                                      if link["operationId"] in kept}
    return family


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schemathesis.check
def schema_valid_requests_are_accepted(ctx: CheckContext, response: Response,
                                       case: Case) -> bool | None:
    """schemathesis' positive_data_acceptance, except for what the document itself says is
    refused beyond the schema: a 400/413/422 whose field errors all name fields of the
    operation's `x-refusals` (rules that depend on the caller, on stored data or on another
    field, declared with `@endpoint(refuses=...)`)."""
    refusals = case.operation.definition.raw.get("x-refusals", {})
    if refusals and response.status_code in (400, 413, 422):
        fields = _error_fields(response)
        if fields and fields <= set(refusals):
            return None
    return positive_data_acceptance(ctx, response, case)


@schemathesis.check
def created_resources_are_found(ctx: CheckContext, response: Response,
                                case: Case) -> bool | None:
    """schemathesis' ensure_resource_availability, except for a 404 that names the body field
    it is about: a reference in the request body (reply_to_comment_id) was not found, the
    created resource in the path was."""
    if response.status_code == 404:
        fields = _error_fields(response)
        if fields and not fields & set(case.path_parameters or {}):
            return None
    return ensure_resource_availability(ctx, response, case)


def _error_fields(response: Response) -> set[str]:
    """The top-level request fields an error envelope names ("topics.1" -> "topics")."""
    try:
        return {e["field"].split(".")[0] for e in response.json().get("errors", [])}
    except (ValueError, AttributeError, KeyError, TypeError):
        return set()


# Replaced by the two checks above.
REPLACED = [positive_data_acceptance, ensure_resource_availability]


# The per-operation test in shards, one pytest item each, so that pytest-xdist can spread
# it over its workers (one item runs on one worker: it was most of the suite's wall time). An
# operation's shard is a stable hash of its path: the same on every run and every worker, and
# an operation added to the document lands in one shard without anyone choosing. All the
# operations of a path share a shard, because schemathesis sends a path's undeclared methods
# (expecting 405) once per test: split, the shards would each send them again.
SHARDS = 4


def shard_of(path: str) -> int:
    return zlib.crc32(path.encode()) % SHARDS


def in_shard(shard: int) -> Callable[[Any], bool]:
    def matches(ctx: Any) -> bool:
        return shard_of(ctx.operation.path) == shard

    matches.__name__ = f"in_shard_{shard}"
    return matches


# schemathesis leaves out the operation that serves the document it loaded, unless a filter
# selects it, and a shard's filter would: it stays out, as it was before the shards.
DOCUMENT = ("GET", "/v1/openapi.json")
SHARD_SCHEMAS = [schema.include(in_shard(shard)).exclude(method=DOCUMENT[0], path=DOCUMENT[1])
                 for shard in range(SHARDS)]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _contract_test(shard: int) -> Callable[..., None]:
    @pytest.mark.timeout(600)
    @SHARD_SCHEMAS[shard].parametrize()
    def test(case: Case) -> None:
        response = case.call()
        if TRACE:
            with open(TRACE, "a", encoding="utf-8") as out:
                out.write(f"{case.method} {case.path} {response.status_code}\n")
        case.validate_response(response, excluded_checks=REPLACED)

    return test


test_every_operation_keeps_its_documented_contract_shard_1 = _contract_test(0)
test_every_operation_keeps_its_documented_contract_shard_2 = _contract_test(1)
test_every_operation_keeps_its_documented_contract_shard_3 = _contract_test(2)
test_every_operation_keeps_its_documented_contract_shard_4 = _contract_test(3)


def test_the_shards_cover_every_operation_once(fuzz_schema) -> None:
    """Every operation of the served document but the document itself is in exactly one
    shard: none fuzzed twice, none dropped (the shards are selected as schemathesis selects
    them for a test)."""
    def labels(loaded: Any) -> list[str]:
        return [result.ok().label for result in loaded.get_all_operations()]

    everything = labels(fuzz_schema)
    documented = [f"{method.upper()} {path}"
                  for path, ops in fuzz_schema.raw_schema["paths"].items()
                  for method in ops if method in HTTP_METHODS]
    assert sorted(everything) == sorted(set(documented) - {" ".join(DOCUMENT)})
    sharded = [labels(fuzz_schema.clone(
        filter_set=fuzz_schema.config.operations.filter_set_with(include=lazy.filter_set)))
        for lazy in SHARD_SCHEMAS]
    assert sorted(label for shard in sharded for label in shard) == sorted(everything)
    assert all(len(shard) > len(everything) // (2 * SHARDS) for shard in sharded), \
        [len(shard) for shard in sharded]


# The stateful phase runs per family of linked operations: schemathesis starts sequences
# only from operations it judges likely to succeed on random input when there are any, and
# it judges none of chat's and pets' so (their bodies name users and media), so one run over
# everything would never start a conversation or a pet card.
FAMILIES = {
    "posts, comments, likes, favorites, shares": r"^/v1/(posts|comments)",
    "pets": r"^/v1/pets",
    "media": r"^/v1/media",
    "conversations and messages": r"^/v1/conversations",
    "notifications": r"^/v1/notifications",
    "merchant products": r"^/v1/merchant/products",
    "addresses": r"^/v1/addresses",
    "shop delivery set-up": r"^/v1/merchant/(delivery|pickup)",
}
# What a family's scenarios start from: the seeded world with room under its quotas.
FAMILY_RESETS = {"addresses": free_address_quota, "shop delivery set-up": free_shop_quota}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_linked_flows_keep_their_documented_contract(fuzz_schema, fuzz_world, family) -> None:
    """The stateful phase: call sequences that follow the document's links (create a post,
    then read, edit, like, comment on and delete it; open a conversation, send a message,
    recall it; upload, complete, read a media; ...), every reply checked as above."""
    followed: list[str] = []
    gateway, world = fuzz_world
    if family == "pets":
        free_pet_quota(gateway, world)
    reset = FAMILY_RESETS.get(family)
    if reset is not None:
        reset(gateway, world)
    operations = _prepared(schemathesis.openapi.from_dict(
        _family(fuzz_schema.raw_schema, FAMILIES[family]), config=_config(world)),
        gateway, world)

    class Flows(operations.as_state_machine()):  # type: ignore[misc]
        def step(self, input: StepInput) -> Any:
            if input.transition is not None and not input.transition.is_inferred \
                    and input.is_applied:
                followed.append(input.transition.id)
            return super().step(input)

        def teardown(self) -> None:
            # Quotas (20 addresses, 100 delivery areas) would fill up over the scenarios,
            # and a create refused where it once passed makes hypothesis' replays differ.
            if reset is not None:
                reset(gateway, world)

        def after_call(self, response: Response, case: Case) -> None:
            super().after_call(response, case)
            if case.method == "POST" and case.path == "/v1/posts" and \
                    response.status_code == 201:
                # A new post is pending until moderation (a task) passes it, and no one,
                # its author included, can like, favorite or share it before; it may be
                # held for review. Publish it, as the client waits for its post.status
                # event and an admin reviews what was held.
                publish(gateway, world, response.json()["data"]["id"])

        def validate_response(self, response: Response, case: Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            if TRACE:
                with open(TRACE, "a", encoding="utf-8") as out:
                    out.write(f"{case.method} {case.path} {response.status_code} stateful\n")
            case.validate_response(response, excluded_checks=REPLACED,
                                   transport_kwargs=kwargs or None, recorder=self.recorder)

    Flows.run(settings=hypothesis.settings(
        max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS,
        derandomize=True, database=None, deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck)))
    if TRACE:
        with open(TRACE, "a", encoding="utf-8") as out:
            out.writelines(f"link {name} {n}\n" for name, n in Counter(followed).items())
    assert followed, f"no step followed a link of the document ({family})"

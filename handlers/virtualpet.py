"""Virtual pet care endpoints under /v1/virtual-pets: the caller's pets, one pet (the owner's
full view or the public card), releasing a pet, interactions and their history. Thin: each
calls one function of pawhome/virtualpet/; docs/virtual-pet.md ("Care").

POST /v1/virtual-pets (adoption) is the generation module's (handlers/virtualpet_generation.py)
and joins `VirtualPetsHandler` there.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.errors import (
    InsufficientInventory,
    InteractionCoolingDown,
    ItemRequired,
    ItemUnsuitable,
    PetAlreadyClean,
    PetAlreadyFull,
    PetTooHungry,
)
from pawhome.platform.pagination import PageQuery
from pawhome.virtualpet import interactions, pets

TAGS = ("virtual-pets",)


class VirtualPetsHandler(ApiHandler):
    @endpoint(query=PageQuery, tags=TAGS, links={"virtual_pet_id": "/items/0/id"},
              summary="The caller's virtual pets, newest first, with their statuses now")
    async def get(self) -> None:
        self.ok(await pets.my_pets(self.r, self.user_id, self.query))


class VirtualPetHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, tags=TAGS,
              read_ahead=lambda h: pets.detail_reads(h.r, h.path_kwargs["virtual_pet_id"]),
              summary="A virtual pet: its owner sees everything (statuses now, cooldowns, "
                      "skills, experience to the next level), anyone else its public card")
    async def get(self, virtual_pet_id: int) -> None:
        self.ok(await pets.pet_detail(self.r, self.viewer_id, virtual_pet_id, self.read_ahead))

    @endpoint(tags=TAGS, summary="Release one of the caller's virtual pets (others' are 404)")
    async def delete(self, virtual_pet_id: int) -> None:
        self.ok(await pets.release_pet(self.r, self.user_id, virtual_pet_id))


class InteractionsHandler(ApiHandler):
    @endpoint(body=interactions.InteractionBody, tags=TAGS, idempotent=True,
              errors=(PetAlreadyFull, PetAlreadyClean, PetTooHungry, InteractionCoolingDown,
                      ItemRequired, ItemUnsuitable, InsufficientInventory),
              refuses={"type": "not while the pet is full (feeding), clean (cleaning) or too "
                               "hungry (playing, training), nor within its cooldown",
                       "item_id": "held by the caller; food for feeding (used up), a toy "
                                  "for playing (kept); no item for the others"},
              summary="Feed, pet, play with, clean or train one of the caller's virtual pets "
                      "(others' are 404): the pet now and the interaction's changes",
              description="A cooldown answers 409 with `data.retry_after` seconds and a "
                          "Retry-After header. A level-up also sends `pet.level_up` and a "
                          "`system` notification.")
    async def post(self, virtual_pet_id: int) -> None:
        self.ok(await interactions.interact(self.r, self.user_id, virtual_pet_id, self.body))

    @endpoint(query=interactions.InteractionsQuery, tags=TAGS,
              summary="The interactions with one of the caller's virtual pets, newest first")
    async def get(self, virtual_pet_id: int) -> None:
        self.ok(await interactions.history(self.r, self.user_id, virtual_pet_id, self.query))

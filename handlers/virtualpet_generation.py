"""Virtual pets from a photo: ask for a generation (202; the `ai` queue does the work and the
result arrives live as generation.progress / generation.done / generation.failed), read it,
and adopt its result (POST /v1/virtual-pets, beside care's GET of the caller's pets). Thin:
each calls one function of pawhome/virtualpet/generation.py or adoption.py;
docs/virtual-pet.md ("Generation", "Adoption").
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from handlers import virtualpet
from pawhome.platform.errors import (
    GenerationAdopted,
    GenerationLimitReached,
    GenerationNotAdoptable,
    NotFound,
    PetLimitReached,
    PhotoNotUsable,
    SensitiveContent,
)
from pawhome.virtualpet import adoption, generation

TAGS = ("virtual-pets",)


class GenerationsHandler(ApiHandler):
    @endpoint(body=generation.GenerationBody, tags=TAGS, status=202,
              errors=(NotFound, PhotoNotUsable, GenerationLimitReached),
              refuses={"media_id": "the caller's ready image upload"},
              links={"generation_id": "/id"},
              summary="Generate a virtual pet from a photo of your pet (queued: watch the "
                      "socket for generation.progress, then generation.done or "
                      "generation.failed; VPET_GENERATIONS_PER_DAY a day)")
    async def post(self) -> None:
        self.ok(await generation.request_generation(self.r, self.user_id, self.body),
                status=202)


class GenerationHandler(ApiHandler):
    @endpoint(tags=TAGS, summary="One of your generations: its stage, then its parameters, "
                                 "sprite and thumbnail (kept 24 h for adoption) or why it failed")
    async def get(self, generation_id: int) -> None:
        self.ok(await generation.get_generation(self.r, self.user_id, generation_id))


class VirtualPetsHandler(virtualpet.VirtualPetsHandler):
    """GET (the caller's pets) is care's; POST adopts."""

    @endpoint(body=adoption.AdoptBody, tags=TAGS, status=201, idempotent=True,
              errors=(NotFound, GenerationNotAdoptable, GenerationAdopted, PetLimitReached,
                      SensitiveContent),
              refuses={"name": "no prohibited words",
                       "generation_id": "the caller's done, unexpired generation"},
              links={"virtual_pet_id": "/id"},
              summary="Adopt the pet of one of your finished generations and name it "
                      "(VPET_PETS_PER_USER pets at most)")
    async def post(self) -> None:
        self.ok(await adoption.adopt(self.r, self.user_id, self.body), status=201)

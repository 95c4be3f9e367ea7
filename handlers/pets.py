"""Pet card endpoints: the caller's cards under /v1/pets, and a user's public list."""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.community import pets
from pawhome.platform.errors import AttachmentRefused, Conflict, NotFound

PET_RULES = {"birthday": "not in the future", "weight_kg": "at most 2 decimals",
             "avatar_media_id": "a ready image the caller uploaded"}


class MyPetsHandler(ApiHandler):
    @endpoint(tags=("pets",), summary="The caller's pet cards")
    async def get(self) -> None:
        async with self.r.db.session() as session:
            rows = await pets.list_own_pets(session, self.user_id)
        self.ok({"items": [pets.pet_view(p) for p in rows]})

    @endpoint(body=pets.PetCreate, tags=("pets",), status=201, summary="Add a pet card",
              links={"pet_id": "/id"}, errors=(NotFound, AttachmentRefused, Conflict),
              refuses=PET_RULES)
    async def post(self) -> None:
        async with self.r.db.session() as session, session.begin():
            pet = await pets.create_pet(session, self.user_id, self.body)
        self.ok(pets.pet_view(pet), status=201)


class MyPetHandler(ApiHandler):
    @endpoint(tags=("pets",), summary="One of the caller's pet cards (others' are 404)")
    async def get(self, pet_id: int) -> None:
        async with self.r.db.session() as session:
            pet = await pets.get_own_pet(session, self.user_id, pet_id)
        self.ok(pets.pet_view(pet))

    @endpoint(body=pets.PetFields, tags=("pets",), errors=(AttachmentRefused,),
              refuses=PET_RULES,
              summary="Change a pet card (only the fields sent)")
    async def put(self, pet_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            pet = await pets.update_pet(session, self.user_id, pet_id, self.body)
        self.ok(pets.pet_view(pet))

    @endpoint(tags=("pets",), summary="Delete a pet card")
    async def delete(self, pet_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            await pets.delete_pet(session, self.user_id, pet_id)
        self.ok({"id": pet_id, "deleted": True})


class UserPetsHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, tags=("pets",),
              summary="A user's pet cards, as on their profile")
    async def get(self, user_id: int) -> None:
        async with self.r.db.session() as session:
            rows = await pets.list_user_pets(session, self.viewer_id, user_id)
        self.ok({"items": [pets.pet_view(p) for p in rows]})

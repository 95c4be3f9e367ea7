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
        self.ok(await pets.list_own_pets(self.r, self.user_id))

    @endpoint(body=pets.PetCreate, tags=("pets",), status=201, summary="Add a pet card",
              links={"pet_id": "/id"}, errors=(NotFound, AttachmentRefused, Conflict),
              refuses=PET_RULES)
    async def post(self) -> None:
        self.ok(await pets.create_pet(self.r, self.user_id, self.body), status=201)


class MyPetHandler(ApiHandler):
    @endpoint(tags=("pets",), summary="One of the caller's pet cards (others' are 404)")
    async def get(self, pet_id: int) -> None:
        self.ok(await pets.get_own_pet(self.r, self.user_id, pet_id))

    @endpoint(body=pets.PetFields, tags=("pets",), errors=(AttachmentRefused,),
              refuses=PET_RULES,
              summary="Change a pet card (only the fields sent)")
    async def put(self, pet_id: int) -> None:
        self.ok(await pets.update_pet(self.r, self.user_id, pet_id, self.body))

    @endpoint(tags=("pets",), summary="Delete a pet card")
    async def delete(self, pet_id: int) -> None:
        self.ok(await pets.delete_pet(self.r, self.user_id, pet_id))


class UserPetsHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, tags=("pets",),
              summary="A user's pet cards, as on their profile")
    async def get(self, user_id: int) -> None:
        self.ok(await pets.list_user_pets(self.r, self.viewer_id, user_id))

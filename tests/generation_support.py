"""Helpers of the virtual pet generation and adoption tests: a real cat photo, photos and
generations written directly (so no queued task races the test), and waiting for a
generation to finish."""
from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from models.base import utcnow
from models.media import Media
from models.virtual_pets import PetGeneration
from pawhome.integrations.storage import new_key, storage_for
from tests.fixtures_worker import wait_until

PHOTOS = Path(__file__).resolve().parent.parent / "pawhome" / "virtualpet" / "data"
CAT_PHOTO = PHOTOS / "demo_cat.jpg"  # a close-up: the face fills the frame, chin cut off
KITTEN_PHOTO = PHOTOS / "kitten.jpg"  # a ginger kitten facing the camera, 1280×720


def cat_photo() -> bytes:
    return CAT_PHOTO.read_bytes()


async def stored_photo(resources, owner_id: int, data: bytes, extension: str = "jpg",
                       content_type: str = "image/jpeg", **fields: Any) -> int:
    """A ready image of `owner_id` holding `data`, written directly (as the media worker
    would leave it), whatever the bytes are."""
    key = new_key(extension)
    with tempfile.NamedTemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        storage_for(resources.settings).put_file(key, Path(handle.name), content_type)
    async with resources.db.session() as session, session.begin():
        values: dict[str, Any] = dict(
            owner_id=owner_id, kind="image", status="ready", storage_key=key,
            content_type=content_type, size=len(data), width=451, height=300, variants={},
            moderation="pass", ready_at=utcnow())
        media = Media(**{**values, **fields})
        session.add(media)
        await session.flush()
        return media.id


async def written_generation(resources, user_id: int, media_id: int = 0,
                             **fields: Any) -> int:
    """A generation row written directly (no task queued): done and adoptable by default."""
    now = utcnow()
    values: dict[str, Any] = dict(
        user_id=user_id, media_id=media_id or 1, hints={}, status="done", stage="done",
        provider="baseline", personality="calm", created_at=now, finished_at=now,
        params={"species": "cat", "base_model": "cat_sleek", "colours": ["#a07755"],
                "eye_shape": "round", "face_shape": "round", "markings": ["stripes"],
                "accessories": []},
        expires_at=now + dt.timedelta(hours=24))
    values.update(fields)
    async with resources.db.session() as session, session.begin():
        gen = PetGeneration(**values)
        session.add(gen)
        await session.flush()
        return gen.id


async def finished(api, user, generation_id: int, timeout: float = 60) -> dict:
    """The generation once it is done or failed (polling GET, as a client without a socket)."""
    async def check():
        data = (await api.get(f"/v1/virtual-pets/generations/{generation_id}",
                              token=user.token)).ok()
        return data if data["status"] in ("done", "failed") else None
    return await wait_until(check, timeout=timeout, what=f"generation {generation_id}")

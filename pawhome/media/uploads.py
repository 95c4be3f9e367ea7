"""Media: direct and chunked uploads, instant (deduplicated) uploads, and the checks other
domains make before attaching media (posts, pets, chat).

With pawhome/media/processing.py (the media task: uploaded original -> served variants, or
failed), the one place that writes the `media` and `media_upload_parts` tables and emits the
media events. Bytes never pass through here except for the local backend's uploads and
parts; pawhome/integrations/storage.py holds them, pawhome/media/files.py decides what they
are. docs/media.md describes the flows, states and limits.
"""
from __future__ import annotations

import asyncio
import logging
import math
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.media import Media, MediaUploadPart
from pawhome.integrations.storage import StorageError, new_key, storage_for, variant_prefix
from pawhome.media.files import TYPES_BY_KIND
from pawhome.messaging import chat
from pawhome.platform import events, outbox
from pawhome.platform.errors import (
    AttachmentRefused,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    field_error,
)
from pawhome.platform.hooks import Hook
from pawhome.platform.resources import Resources
from settings import Settings, get_settings

log = logging.getLogger("pawhome.media.uploads")


MAX_ID = 2**63 - 1
SHA256 = r"^[0-9a-f]{64}$"


# -- request bodies and event schemas ------------------------------------------------------------


class CreateMediaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["image", "video"]
    size: int = Field(ge=1, description="bytes the client will upload")
    content_type: str = Field(max_length=64)
    sha256: str | None = Field(None, pattern=SHA256,
                               description="hex SHA-256 of the file; enables instant upload")


class StartChunkedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["image", "video"] = "video"
    size: int = Field(ge=1)
    content_type: str = Field("video/mp4", max_length=64)
    sha256: str = Field(pattern=SHA256)
    part_size: int = Field(ge=1)


class VariantView(BaseModel):
    url: str
    width: int | None = None
    height: int | None = None
    content_type: str


class MediaReadyEvent(BaseModel):
    media_id: int
    kind: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    variants: dict[str, VariantView]


class MediaFailedEvent(BaseModel):
    media_id: int
    reason: str


events.register_event_schema("media.ready", MediaReadyEvent)
events.register_event_schema("media.failed", MediaFailedEvent)


# -- views -----------------------------------------------------------------------------------


def _store(settings: Settings):
    return storage_for(settings)


def variants_view(settings: Settings, media: Media) -> dict[str, dict[str, Any]]:
    store = _store(settings)
    return {name: {"url": store.public_url(v["key"]), "width": v.get("width"),
                   "height": v.get("height"), "content_type": v.get("content_type", "")}
            for name, v in (media.variants or {}).items() if isinstance(v, dict) and "key" in v}


def media_view(settings: Settings, media: Media) -> dict[str, Any]:
    return {"id": media.id, "kind": media.kind, "status": media.status,
            "content_type": media.content_type, "size": media.size, "width": media.width,
            "height": media.height, "duration_ms": media.duration_ms,
            "variants": variants_view(settings, media) if media.status == "ready" else {},
            "fail_reason": media.fail_reason or None, "moderation": media.moderation,
            "created_at": media.created_at}


def ready_event(settings: Settings, media: Media) -> dict[str, Any]:
    """The payload of `media.ready`."""
    return {"media_id": media.id, "kind": media.kind, "width": media.width,
            "height": media.height, "duration_ms": media.duration_ms,
            "variants": variants_view(settings, media)}


# -- limits ----------------------------------------------------------------------------------


def max_bytes(settings: Settings, kind: str) -> int:
    return settings.media_image_max_bytes if kind == "image" else settings.media_video_max_bytes


def _check_declared(settings: Settings, kind: str, size: int, content_type: str) -> str:
    """The stored key's extension for a declared upload; 413/422 when it cannot be one."""
    limit = max_bytes(settings, kind)
    if size > limit:
        raise PayloadTooLarge(f"{kind}s are limited to {limit} bytes",
                              errors=[field_error("size", f"must be at most {limit}")])
    extension = TYPES_BY_KIND[kind].get(content_type.lower())
    if extension is None:
        allowed = ", ".join(TYPES_BY_KIND[kind])
        raise ValidationFailed(errors=[field_error("content_type",
                                                   f"must be one of {allowed} for {kind}")])
    return extension


async def _owned(session: AsyncSession, owner_id: int, media_id: int,
                 lock: bool = False) -> Media:
    query = select(Media).where(Media.id == media_id)
    if lock:
        query = query.with_for_update()
    media = (await session.execute(query)).scalar_one_or_none()
    if media is None or media.owner_id != owner_id:
        raise NotFound("Media not found")
    return media


# Run in the transaction that makes media ready whose content is not checked yet (an image
# the media task processed, or an instant copy of one still pending), with (session,
# media_id): the content check is the moderation domain's, which connects it
# (pawhome/moderation/reviews.py).
needs_review: Hook[[AsyncSession, int]] = Hook("media.needs_review")


async def _instant_copy(session: AsyncSession, settings: Settings, owner_id: int, kind: str,
                        size: int, sha256: str) -> Media | None:
    """A ready media row for `owner_id` sharing the variants of an already processed file
    with the same content, or None. The worker verified that file's hash itself, so a
    client cannot plant content under someone else's hash."""
    source = (await session.execute(
        select(Media).where(Media.sha256 == sha256, Media.kind == kind,
                            Media.status == "ready", Media.size == size)
        .order_by(Media.id).limit(1))).scalar_one_or_none()
    if source is None:
        return None
    now = utcnow()
    copy = Media(owner_id=owner_id, kind=kind, status="ready",
                 # Nothing is stored at this key: the row shares the source's variants.
                 storage_key=f"{source.storage_key}@{uuid.uuid4().hex}",
                 content_type=source.content_type, size=source.size, sha256=sha256,
                 width=source.width, height=source.height, duration_ms=source.duration_ms,
                 variants=dict(source.variants or {}), moderation=source.moderation,
                 ready_at=now)
    session.add(copy)
    await session.flush()
    events.emit_to_user(session, owner_id, "media.ready", ready_event(settings, copy))
    if copy.moderation == "pending":
        await needs_review.run(session, copy.id)
    return copy


def _instant_reply(settings: Settings, media: Media) -> dict[str, Any]:
    return {"media_id": media.id, "instant": True, "status": "ready",
            "media": media_view(settings, media)}


# -- direct upload ---------------------------------------------------------------------------


async def create_upload(resources: Resources, owner_id: int,
                        body: CreateMediaBody) -> dict[str, Any]:
    """A media row and where to PUT the file (or, for known content, a ready media now)."""
    settings = resources.settings
    extension = _check_declared(settings, body.kind, body.size, body.content_type)
    store = _store(settings)
    async with resources.db.session() as session, session.begin():
        if body.sha256:
            copy = await _instant_copy(session, settings, owner_id, body.kind, body.size,
                                       body.sha256)
            if copy is not None:
                return _instant_reply(settings, copy)

        media = Media(owner_id=owner_id, kind=body.kind, status="uploading",
                      storage_key=new_key(extension), content_type=body.content_type.lower(),
                      size=body.size, sha256=body.sha256)
        session.add(media)
        await session.flush()
        upload = store.presign_put(media.storage_key, media_id=media.id,
                                   content_type=media.content_type, size=body.size,
                                   expires=settings.media_upload_url_ttl)
        return {"media_id": media.id, "instant": False, "upload_url": upload.url,
                "method": upload.method, "headers": upload.headers,
                "expires_in": upload.expires_in}


async def _enqueue_processing(session: AsyncSession, media: Media) -> None:
    media.status = "uploaded"
    outbox.enqueue_task(session, "media.process", media.id)


async def complete_upload(resources: Resources, owner_id: int, media_id: int) -> dict[str, Any]:
    """The client says its PUT finished: check the object is there and the declared size,
    then hand it to the media worker. Repeating it after success changes nothing."""
    settings = resources.settings
    store = _store(settings)
    async with resources.db.session() as session, session.begin():
        media = await _owned(session, owner_id, media_id, lock=True)
        if media.status != "uploading":
            return media_view(settings, media)
        if media.upload_id:
            raise Conflict("This is a chunked upload: complete it at "
                           f"/v1/media/uploads/{media_id}/complete")
        info = await asyncio.to_thread(store.head, media.storage_key)
        if info is None:
            raise Conflict("Nothing was uploaded yet",
                           errors=[field_error("media_id", "no uploaded object")])
        if info.size != media.size:
            raise Conflict(f"Uploaded {info.size} bytes, declared {media.size}",
                           errors=[field_error("size", "does not match the uploaded object")])
        await _enqueue_processing(session, media)
        return media_view(settings, media)


async def get_media(resources: Resources, owner_id: int, media_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        return media_view(resources.settings, await _owned(session, owner_id, media_id))


# -- the local backend's upload URL -------------------------------------------------------------


async def check_local_upload(resources: Resources, claims: dict) -> int:
    """The byte limit of a local upload whose token verified, if its media still waits for
    the file (a token cannot overwrite a file that is being or was processed)."""
    async with resources.db.session() as session:
        media = (await session.execute(select(Media).where(
            Media.id == int(claims["mid"])))).scalar_one_or_none()
    if media is None or media.storage_key != claims["key"] or media.upload_id:
        raise NotFound("No such upload")
    if media.status != "uploading":
        raise Conflict("This upload is already complete")
    return int(claims["size"])


async def store_local_upload(resources: Resources, key: str, path: Path) -> None:
    store = _store(resources.settings)
    await asyncio.to_thread(store.move_into_place, key, path)


# -- chunked, resumable upload ---------------------------------------------------------------


async def start_chunked_upload(resources: Resources, owner_id: int,
                               body: StartChunkedBody) -> dict[str, Any]:
    settings = resources.settings
    extension = _check_declared(settings, body.kind, body.size, body.content_type)
    low, high = settings.media_part_min_bytes, settings.media_part_max_bytes
    if not low <= body.part_size <= high:
        raise ValidationFailed(errors=[field_error("part_size",
                                                   f"must be between {low} and {high}")])
    parts = math.ceil(body.size / body.part_size)
    if parts > settings.media_max_parts:
        raise ValidationFailed(errors=[field_error(
            "part_size", f"makes {parts} parts; at most {settings.media_max_parts}")])
    store = _store(settings)
    async with resources.db.session() as session, session.begin():
        copy = await _instant_copy(session, settings, owner_id, body.kind, body.size,
                                   body.sha256)
        if copy is not None:
            return _instant_reply(settings, copy)

        key = new_key(extension)
        upload_id = await asyncio.to_thread(store.create_multipart, key, body.content_type)
        media = Media(owner_id=owner_id, kind=body.kind, status="uploading", storage_key=key,
                      content_type=body.content_type.lower(), size=body.size,
                      sha256=body.sha256, upload_id=upload_id)
        session.add(media)
        await session.flush()
        return {"media_id": media.id, "instant": False, "upload_id": upload_id,
                "part_size": body.part_size, "parts": parts}


async def check_part(resources: Resources, owner_id: int, media_id: int,
                     part_number: int) -> int:
    """Before a part's bytes are read: may this user send part n? Returns its byte limit."""
    settings = resources.settings
    async with resources.db.session() as session:
        media = await _owned(session, owner_id, media_id)
    if not media.upload_id:
        raise NotFound("No chunked upload for this media")
    if media.status != "uploading":
        raise Conflict("This upload is already complete")
    if not 1 <= part_number <= settings.media_max_parts:
        raise ValidationFailed(errors=[field_error(
            "part_number", f"must be between 1 and {settings.media_max_parts}")])
    return min(settings.media_part_max_bytes, media.size)


async def save_part(resources: Resources, owner_id: int, media_id: int, part_number: int,
                    path: Path, size: int) -> dict[str, Any]:
    """Store one part (again, if it was sent before: the last one sent wins)."""
    store = _store(resources.settings)
    async with resources.db.session() as session:
        media = await _owned(session, owner_id, media_id)
        key, upload_id = media.storage_key, media.upload_id
    if size == 0:
        raise ValidationFailed(errors=[field_error("body", "a part cannot be empty")])
    try:
        etag = await asyncio.to_thread(store.upload_part, key, upload_id, part_number, path)
    except StorageError as error:
        raise Conflict("This upload can no longer take parts") from error
    async with resources.db.session() as session, session.begin():
        media = await _owned(session, owner_id, media_id, lock=True)
        if media.status != "uploading":
            raise Conflict("This upload is already complete")
        row = await session.get(MediaUploadPart, (media_id, part_number))
        if row is None:
            session.add(MediaUploadPart(media_id=media_id, part_number=part_number, size=size,
                                        etag=etag))
        else:
            row.size, row.etag, row.created_at = size, etag, utcnow()
    return {"part_number": part_number, "size": size, "etag": etag}


async def _parts(session: AsyncSession, media_id: int) -> list[MediaUploadPart]:
    return list((await session.execute(
        select(MediaUploadPart).where(MediaUploadPart.media_id == media_id)
        .order_by(MediaUploadPart.part_number))).scalars())


async def list_parts(resources: Resources, owner_id: int, media_id: int) -> dict[str, Any]:
    """What arrived so far, so a client that lost its connection sends only the rest."""
    async with resources.db.session() as session:
        media = await _owned(session, owner_id, media_id)
        if not media.upload_id:
            raise NotFound("No chunked upload for this media")
        parts = await _parts(session, media_id)
    received = sum(p.size for p in parts)
    return {"media_id": media_id, "status": media.status, "size": media.size,
            "received": received,
            "parts": [{"part_number": p.part_number, "size": p.size, "etag": p.etag}
                      for p in parts]}


async def complete_chunked_upload(resources: Resources, owner_id: int,
                                  media_id: int) -> dict[str, Any]:
    """Assemble the parts into the object and hand it to the worker, which checks the
    declared SHA-256 against the assembled bytes (a mismatch fails the media)."""
    settings = resources.settings
    store = _store(settings)
    async with resources.db.session() as session, session.begin():
        media = await _owned(session, owner_id, media_id, lock=True)
        if not media.upload_id:
            raise NotFound("No chunked upload for this media")
        if media.status != "uploading":
            return media_view(settings, media)
        parts = await _parts(session, media_id)
        numbers = [p.part_number for p in parts]
        missing = sorted(set(range(1, (max(numbers) if numbers else 0) + 1)) - set(numbers))
        total = sum(p.size for p in parts)
        if not parts or missing or total != media.size:
            detail = (f"missing parts {missing[:20]}" if missing else
                      f"received {total} of {media.size} bytes")
            raise Conflict(f"Upload incomplete: {detail}",
                           errors=[field_error("parts", detail)])
        minimum = settings.media_part_min_bytes
        small = [p.part_number for p in parts[:-1] if p.size < minimum]
        if small:
            raise Conflict(f"Parts {small[:20]} are under the minimum part size",
                           errors=[field_error("parts", "every part but the last must be at "
                                                        f"least {minimum} bytes")])
        try:
            await asyncio.to_thread(store.complete_multipart, media.storage_key,
                                    media.upload_id, [(p.part_number, p.etag) for p in parts])
        except StorageError as error:
            raise Conflict(f"Could not assemble the upload: {error}") from error
        await session.execute(delete(MediaUploadPart).where(
            MediaUploadPart.media_id == media_id))
        await _enqueue_processing(session, media)
        return media_view(settings, media)


# -- attaching media elsewhere -------------------------------------------------------------------


async def require_ready(session: AsyncSession, owner_id: int, media_ids: list[int],
                        kind: str | None = None, field: str = "media_ids") -> list[Media]:
    """The media rows, in the given order, if every one is the owner's, ready and of `kind`;
    else 422 naming each offending position (`media_ids.2`)."""
    wanted = [int(m) for m in media_ids]
    rows = {}
    if wanted:
        rows = {m.id: m for m in (await session.execute(
            select(Media).where(Media.id.in_(set(wanted))))).scalars()}
    problems, seen = [], set()
    for position, media_id in enumerate(wanted):
        where = f"{field}.{position}"
        media = rows.get(media_id)
        if media_id in seen:
            problems.append(field_error(where, "is listed twice"))
        elif media is None or media.owner_id != owner_id:
            problems.append(field_error(where, "no such media of yours"))
        elif kind is not None and media.kind != kind:
            problems.append(field_error(where, f"is a {media.kind}, not a {kind}"))
        elif media.status == "failed":
            problems.append(field_error(where, f"failed: {media.fail_reason}"))
        elif media.status != "ready":
            problems.append(field_error(where, f"is not ready yet ({media.status})"))
        seen.add(media_id)
    if problems:
        raise ValidationFailed("Some media cannot be attached", errors=problems)
    return [rows[m] for m in wanted]


# -- images the server makes -------------------------------------------------------------------


def store_generated_file(settings: Settings, path: Path, content_type: str, name: str) -> str:
    """Blocking: put an image the server made for a user (a virtual pet's sprite) into the
    media storage under a new key, shaped as a variant (media/<yyyy>/<mm>/<uuid>/<name>.<ext>,
    so the local backend serves it like one); returns the key. Then `record_generated_image`."""
    extension = TYPES_BY_KIND["image"][content_type]
    key = f"{variant_prefix(new_key(extension))}{name}.{extension}"
    _store(settings).put_file(key, path, content_type)
    return key


async def record_generated_image(session: AsyncSession, owner_id: int, key: str,
                                 content_type: str, width: int, height: int,
                                 size: int) -> Media:
    """A stored server-made image as a ready media of the owner's, itself its one variant
    (made from their own reviewed upload, it is not reviewed again). Caller commits."""
    name = key.rsplit("/", 1)[-1]
    media = Media(owner_id=owner_id, kind="image", status="ready", storage_key=key,
                  content_type=content_type, size=size, width=width, height=height,
                  variants={name: {"key": key, "width": width, "height": height,
                                   "content_type": content_type}},
                  moderation="pass", ready_at=utcnow())
    session.add(media)
    await session.flush()
    return media


def file_url(settings: Settings, key: str) -> str:
    """The public URL of a stored file."""
    return _store(settings).public_url(key)


def jpeg_variant(media: Media, width: int | None = None) -> tuple[str, str] | None:
    """(name, storage key) of a JPEG variant the media worker made (a video's is its poster):
    the narrowest at least `width` wide, else the widest; the widest when `width` is None.
    JPEG because every consumer opens it (WeChat's image check, share cards). None if the
    media has no JPEG variant (not processed)."""
    jpegs = sorted(((v.get("width") or 0, name, v["key"])
                    for name, v in (media.variants or {}).items()
                    if isinstance(v, dict) and "key" in v
                    and v.get("content_type") == "image/jpeg"))
    if not jpegs:
        return None
    if width is not None:
        for found_width, name, key in jpegs:
            if found_width >= width:
                return name, key
    return jpegs[-1][1], jpegs[-1][2]


def _pick(settings: Settings, media: Media, width: int) -> dict[str, Any] | None:
    """The WebP variant closest to `width` without going under it (else the largest)."""
    views = variants_view(settings, media)
    webps = sorted((v for v in views.values() if v["content_type"] == "image/webp"),
                   key=lambda v: v["width"] or 0)
    for view in webps:
        if (view["width"] or 0) >= width:
            return view
    return webps[-1] if webps else None


async def check_chat_image(session: AsyncSession, sender_id: int, recipient_id: int,
                           media_id: int) -> dict[str, Any]:
    """Chat's attachment check for image messages: the sender's own, ready image."""
    settings = get_settings()
    media = await session.get(Media, media_id)
    if media is None or media.owner_id != sender_id or media.kind != "image" or \
            media.status != "ready":
        reason = ("is not ready yet" if media is not None and media.owner_id == sender_id
                  and media.kind == "image" and media.status != "failed"
                  else "is not a ready image of yours")
        raise AttachmentRefused("Image messages need a ready image uploaded through the "
                                "media service",
                                errors=[field_error("media_id", reason)])
    large, thumb = _pick(settings, media, 1080), _pick(settings, media, 240)
    return {"url": large["url"] if large else "", "thumb_url": thumb["url"] if thumb else "",
            "width": media.width, "height": media.height}


def register_chat_attachment_check() -> None:
    """Let DMs carry images (pawhome/messaging/chat.py refuses kinds without a check)."""
    chat.register_attachment_check("image", check_chat_image)


register_chat_attachment_check()

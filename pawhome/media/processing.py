"""From an uploaded original to a finished media: the media task (check the content, make
the served variants, mark the media ready or failed with a reason), giving up on a media
whose processing kept failing, and failing uploads never completed.

Each ends in `_finish`, the one transition to ready or failed: it emits `media.ready` or
`media.failed` to the owner and asks for the content review of a ready image
(uploads.needs_review). The blocking work (pawhome/media/files.py, storage calls) runs in
threads. docs/media.md.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import tempfile
from pathlib import Path

from sqlalchemy import delete, select

from models.base import utcnow
from models.media import Media, MediaUploadPart
from pawhome.integrations.storage import StorageError, storage_for, variant_prefix
from pawhome.media import files as media_files
from pawhome.media.files import MediaRejected, Processed
from pawhome.media.uploads import max_bytes, needs_review, ready_event
from pawhome.platform import events
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.media.processing")


async def _finish(resources: Resources, media_id: int, *, processed: Processed | None = None,
                  variants: dict | None = None, sha256: str | None = None,
                  reason: str = "") -> str:
    settings = resources.settings
    async with resources.db.session() as session, session.begin():
        media = (await session.execute(select(Media).where(Media.id == media_id)
                                       .with_for_update())).scalar_one_or_none()
        if media is None or media.status in ("ready", "failed"):
            return media.status if media is not None else "missing"
        if sha256:
            media.sha256 = sha256
        if reason:
            media.status, media.fail_reason = "failed", reason[:255]
            events.emit_to_user(session, media.owner_id, "media.failed",
                                {"media_id": media.id, "reason": media.fail_reason})
            return "failed"
        assert processed is not None
        media.status, media.ready_at, media.fail_reason = "ready", utcnow(), ""
        media.content_type = processed.content_type
        media.width, media.height = processed.width, processed.height
        media.duration_ms = processed.duration_ms
        media.variants = variants or {}
        events.emit_to_user(session, media.owner_id, "media.ready",
                            ready_event(settings, media))
        if media.kind == "image":
            await needs_review.run(session, media.id)
        return "ready"


def _process_file(settings: Settings, media_kind: str, declared_sha256: str | None,
                  source: Path, workdir: Path) -> tuple[Processed, str]:
    """Blocking: check and transform the downloaded original. Raises MediaRejected."""
    content_type = media_files.check_content(source, media_kind, max_bytes(settings, media_kind))
    sha256 = media_files.sha256_of(source)
    if declared_sha256 and declared_sha256 != sha256:
        raise MediaRejected("content does not match the declared sha256")
    if media_kind == "image":
        processed = media_files.process_image(source, workdir,
                                              max_pixels=settings.media_max_pixels,
                                              widths=settings.media_variant_widths)
        processed.content_type = content_type
    else:
        processed = media_files.process_video(
            source, workdir, content_type, ffmpeg=settings.media_ffmpeg_path,
            ffprobe=settings.media_ffprobe_path, timeout=settings.media_ffmpeg_timeout,
            max_pixels=settings.media_max_pixels,
            poster_width=max(settings.media_variant_widths))
    return processed, sha256


async def process_media(resources: Resources, media_id: int) -> str:
    """Turn an uploaded original into served variants, or fail it with a reason. Idempotent:
    a finished media is left alone; a rerun after a crash redoes the work and overwrites the
    same variant keys. Returns the final status (or why nothing was done)."""
    settings = resources.settings
    store = storage_for(settings)
    async with resources.db.session() as session, session.begin():
        media = (await session.execute(select(Media).where(Media.id == media_id)
                                       .with_for_update())).scalar_one_or_none()
        if media is None:
            return "missing"
        if media.status in ("ready", "failed", "uploading"):
            return media.status
        media.status = "processing"
        kind, key, declared = media.kind, media.storage_key, media.sha256
    with tempfile.TemporaryDirectory(prefix="pawhome-media-") as tmp:
        workdir = Path(tmp)
        source = workdir / "original"
        info = await asyncio.to_thread(store.head, key)
        if info is None:
            return await _finish(resources, media_id, reason="the uploaded file is gone")
        if info.size > max_bytes(settings, kind):
            return await _finish(resources, media_id, reason=(
                f"file is {info.size} bytes, over the {max_bytes(settings, kind)} byte limit "
                f"for {kind}s"))
        await asyncio.to_thread(store.download, key, source)
        try:
            processed, sha256 = await asyncio.to_thread(_process_file, settings, kind,
                                                        declared, source, workdir)
        except MediaRejected as rejected:
            return await _finish(resources, media_id, reason=str(rejected))
        prefix = variant_prefix(key)
        variants = {}
        for variant in processed.variants:
            variant_key = prefix + variant.name
            await asyncio.to_thread(store.put_file, variant_key, variant.path,
                                    variant.content_type)
            variants[variant.name] = {"key": variant_key, "width": variant.width,
                                      "height": variant.height,
                                      "content_type": variant.content_type}
    return await _finish(resources, media_id, processed=processed, variants=variants,
                         sha256=sha256)


async def fail_media(resources: Resources, media_id: int, reason: str) -> str:
    """Give up on a media whose processing kept failing for reasons outside the file."""
    return await _finish(resources, media_id, reason=reason)


async def purge_abandoned_uploads(resources: Resources, now: dt.datetime | None = None,
                                  batch: int = 100) -> int:
    """Uploads started but never completed within MEDIA_UPLOAD_ABANDON_SECONDS: their stored
    bytes (a PUT object, multipart parts) are deleted, then the media fails with the reason
    and its owner is told (`media.failed`). Storage first, so a crash in between only leaves
    work the next run repeats; a completion racing with it finds no object and fails.
    Returns how many were purged."""
    settings = resources.settings
    cutoff = (now or utcnow()) - dt.timedelta(seconds=settings.media_upload_abandon_seconds)
    async with resources.db.session() as session:
        due = (await session.execute(
            select(Media.id, Media.storage_key, Media.upload_id)
            .where(Media.status == "uploading", Media.created_at < cutoff)
            .order_by(Media.id).limit(batch))).all()
    store = storage_for(settings)
    purged = 0
    for media_id, key, upload_id in due:
        try:
            if upload_id:
                try:
                    await asyncio.to_thread(store.abort_multipart, key, upload_id)
                except StorageError as error:  # e.g. already expired by a lifecycle rule
                    log.info("multipart upload of media %s not aborted: %s", media_id, error)
            await asyncio.to_thread(store.delete, key)
        except StorageError as error:
            log.warning("abandoned upload of media %s not deleted (next run): %s",
                        media_id, error)
            continue
        async with resources.db.session() as session, session.begin():
            await session.execute(delete(MediaUploadPart).where(
                MediaUploadPart.media_id == media_id))
        hours = settings.media_upload_abandon_seconds / 3600
        if await _finish(resources, media_id,
                         reason=f"upload abandoned: not completed within {hours:g} h") \
                == "failed":
            purged += 1
    return purged

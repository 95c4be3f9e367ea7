"""Uploaded media: direct uploads to object storage, chunked resumable uploads, and what the
media worker made of them (type by content, dimensions, variants, poster frames)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

# uploading -> uploaded (complete called) -> processing -> ready | failed
MEDIA_STATES = ("uploading", "uploaded", "processing", "ready", "failed")


class Media(Base):
    __tablename__ = "media"
    __table_args__ = (Index("ix_media_owner_created", "owner_id", "created_at"),
                      Index("ix_media_sha256", "sha256"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # image | video (declared; checked by content)
    status: Mapped[str] = mapped_column(String(16), default="uploading")
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(64), default="")  # detected by content
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    variants: Mapped[dict] = mapped_column(JSON, default=dict)  # {"480.webp": key, "poster": key}
    fail_reason: Mapped[str] = mapped_column(String(255), default="")
    upload_id: Mapped[str | None] = mapped_column(String(128))  # multipart upload id
    moderation: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    ready_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MediaUploadPart(Base):
    """One uploaded part of a chunked upload (resumable: list what is there, send the rest)."""
    __tablename__ = "media_upload_parts"

    media_id: Mapped[int] = mapped_column(BigId, ForeignKey("media.id", ondelete="CASCADE"),
                                          primary_key=True)
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

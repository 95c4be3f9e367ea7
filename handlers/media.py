"""Media endpoints: start an upload, complete it, read its state; chunked uploads; and, with
the local storage backend, the upload URL and file serving that COS does in production.

Uploads of bytes (the local upload URL, chunk parts) stream the body to a temporary file:
their checks (token or auth, ownership, size limit) run in `prepare`, before a byte is read,
and the size limit is enforced while reading, so an oversized body is refused early.
"""
from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import tornado.web
from tornado.web import URLSpec

from gateway.errormap import to_app_error
from gateway.handler import ApiHandler, endpoint, implemented_methods
from gateway.routing import Route
from pawhome.integrations.storage import read_upload_token, storage_for
from pawhome.media import uploads as media
from pawhome.platform import codec
from pawhome.platform.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed

TAGS = ("media",)
# What depends on the declared kind, and on the storage's rules for parts.
MEDIA_RULES = {"content_type": "an image type (image/jpeg, png, webp, gif) with kind image, a "
                               "video type (video/mp4, quicktime, webm) with kind video",
               "size": "at most MEDIA_IMAGE_MAX_BYTES (20 MB) for an image, "
                       "MEDIA_VIDEO_MAX_BYTES (200 MB) for a video"}
CHUNK_RULES = {**MEDIA_RULES,
               "part_size": "MEDIA_PART_MIN_BYTES (1 MB) to MEDIA_PART_MAX_BYTES (16 MB), "
                            "at most MEDIA_MAX_PARTS (1000) parts"}


def streamed(**kwargs: Any):
    """Like @endpoint, for a streamed-body method: the contract (auth, limits) is enforced by
    StreamedBodyHandler.prepare before the body arrives, not around the method."""
    def decorate(method):
        method.endpoint_spec = endpoint(**kwargs)(method).endpoint_spec
        return method
    return decorate


@tornado.web.stream_request_body
class StreamedBodyHandler(ApiHandler):
    """Streams the request body into a temporary file of at most `body_limit` bytes."""

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(**kwargs)
        self.body_file = None
        self.body_path: Path | None = None
        self.body_size = 0
        self.body_limit = 0
        self.body_too_large = False

    async def prepare(self) -> None:
        super().prepare()
        method = getattr(type(self), self.request.method.lower(), None)
        spec = getattr(method, "endpoint_spec", None)
        if spec is None:
            raise tornado.web.HTTPError(405)
        await self.run_endpoint(spec, type(self).open_body, self.path_args, self.path_kwargs)

    async def limit_for(self, **path: Any) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def scratch_dir(self) -> str:
        store = storage_for(self.r.settings)
        finder = getattr(store, "scratch_dir", None)
        return str(finder()) if finder else tempfile.gettempdir()

    async def open_body(self, *args: Any, **path: Any) -> None:
        limit = await self.limit_for(**path)
        declared = self.request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Body is over the {limit} byte limit of this upload")
        connection = self.request.connection
        if hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(limit + 1)  # tornado stops reading past the limit
        self.body_limit = limit
        fd, name = tempfile.mkstemp(dir=self.scratch_dir(), prefix="upload-")
        self.body_file = os.fdopen(fd, "wb")
        self.body_path = Path(name)

    async def data_received(self, chunk: bytes) -> None:
        if self.body_file is None or self.body_too_large:
            return
        self.body_size += len(chunk)
        if self.body_size > self.body_limit:
            self.body_too_large = True
            return
        await asyncio.to_thread(self.body_file.write, chunk)

    async def received_body(self) -> tuple[Path, int]:
        """The streamed body's file and size, once it all arrived within the limit."""
        assert self.body_file is not None and self.body_path is not None
        await asyncio.to_thread(self.body_file.close)
        if self.body_too_large:
            raise PayloadTooLarge(f"Body is over the {self.body_limit} byte limit")
        return self.body_path, self.body_size

    def _discard_body(self) -> None:
        if self.body_file is not None and not self.body_file.closed:
            self.body_file.close()
        if self.body_path is not None:
            self.body_path.unlink(missing_ok=True)  # moved into place, or not wanted

    def on_finish(self) -> None:
        self._discard_body()
        super().on_finish()

    def on_connection_close(self) -> None:
        self._discard_body()
        super().on_connection_close()


# -- direct upload ---------------------------------------------------------------------------


class MediaHandler(ApiHandler):
    @endpoint(body=media.CreateMediaBody, summary="Start an upload (or upload instantly)",
              description="Returns a presigned URL to PUT the file to with the given headers, "
                          "then call POST /v1/media/{media_id}/complete. With `sha256` of a "
                          "file already stored and processed, returns `instant: true` and a "
                          "ready media at once: nothing to upload.",
              tags=TAGS, status=201, errors=(PayloadTooLarge, ValidationFailed),
              also={200: "Known content (sha256): a ready media at once, nothing to upload"},
              links={"media_id": "/media_id"}, refuses=MEDIA_RULES)
    async def post(self) -> None:
        data = await media.create_upload(self.r, self.user_id, self.body)
        self.ok(data, status=201 if not data["instant"] else 200)


class MediaCompleteHandler(ApiHandler):
    @endpoint(summary="Finish a direct upload: check the object, start processing", tags=TAGS,
              errors=(Conflict,))
    async def post(self, media_id: int) -> None:
        self.ok(await media.complete_upload(self.r, self.user_id, media_id))


class MediaDetailHandler(ApiHandler):
    @endpoint(summary="One of my media: status, variants, fail reason", tags=TAGS)
    async def get(self, media_id: int) -> None:
        self.ok(await media.get_media(self.r, self.user_id, media_id))


class LocalUploadHandler(StreamedBodyHandler):
    """The local backend's presigned URL: the token is the credential (no Authorization)."""

    async def limit_for(self, token: str) -> int:
        if self.r.settings.media_storage != "local":
            raise NotFound("No such upload")
        try:
            self.claims = read_upload_token(self.r.settings, token)
        except jwt.InvalidTokenError as error:
            raise NotFound("No such upload (the URL is invalid or expired)") from error
        return await media.check_local_upload(self.r, self.claims)

    @streamed(auth=False, summary="Upload a file to a local-storage upload URL",
              description="Body: the file's bytes. Only with MEDIA_STORAGE=local.", tags=TAGS,
              errors=(PayloadTooLarge, Conflict))
    async def put(self, token: str) -> None:
        path, size = await self.received_body()
        await media.store_local_upload(self.r, self.claims["key"], path)
        self.ok({"media_id": int(self.claims["mid"]), "size": size})

    def on_finish(self) -> None:
        # The token is a credential: keep it out of the access log.
        self.request.path = "/v1/media/upload/***"
        super().on_finish()


# -- chunked upload --------------------------------------------------------------------------


class ChunkedUploadsHandler(ApiHandler):
    @endpoint(body=media.StartChunkedBody, summary="Start a chunked, resumable upload",
              description="Then PUT each part to /v1/media/uploads/{media_id}/parts/{n} "
                          "(any order, resend freely), and POST .../complete. A known "
                          "`sha256` answers `instant: true` instead.",
              tags=TAGS, status=201, errors=(PayloadTooLarge, ValidationFailed),
              also={200: "Known content (sha256): a ready media at once, nothing to upload"},
              links={"media_id": "/media_id"}, refuses=CHUNK_RULES)
    async def post(self) -> None:
        data = await media.start_chunked_upload(self.r, self.user_id, self.body)
        self.ok(data, status=201 if not data["instant"] else 200)


class UploadPartHandler(StreamedBodyHandler):
    async def limit_for(self, media_id: int, part_number: int) -> int:
        return await media.check_part(self.r, self.user_id, media_id, part_number)

    @streamed(summary="Upload part n of a chunked upload (body: the part's bytes)", tags=TAGS,
              errors=(PayloadTooLarge, ValidationFailed, Conflict),
              refuses={"body": "not empty; every part but the last exactly part_size bytes",
                       "part_number": "1 to the upload's part count (at most MEDIA_MAX_PARTS, "
                                      "1000)"})
    async def put(self, media_id: int, part_number: int) -> None:
        path, size = await self.received_body()
        self.ok(await media.save_part(self.r, self.user_id, media_id, part_number, path,
                                      size))


class UploadPartsHandler(ApiHandler):
    @endpoint(summary="The parts received so far (to resume an interrupted upload)",
              tags=TAGS)
    async def get(self, media_id: int) -> None:
        self.ok(await media.list_parts(self.r, self.user_id, media_id))


class ChunkedCompleteHandler(ApiHandler):
    @endpoint(summary="Assemble the parts and start processing", tags=TAGS,
              errors=(Conflict,))
    async def post(self, media_id: int) -> None:
        self.ok(await media.complete_chunked_upload(self.r, self.user_id, media_id))


# -- serving files (local backend) -----------------------------------------------------------

# Only derived files are served: never an original, which may still carry EXIF/GPS.
_SERVED = re.compile(r"^media/\d{4}/\d{2}/[0-9a-f]{32}/[a-z0-9.]+\.(?:jpg|webp|mp4|mov|webm)$")


class MediaFileHandler(tornado.web.StaticFileHandler):
    """Variants under MEDIA_ROOT, with Range requests, ETags and long caching (keys are
    never reused for other content)."""

    def initialize(self, route_template: str = "", path_types: dict | None = None) -> None:
        settings = self.application.settings["resources"].settings
        super().initialize(path=settings.media_root)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        relative = os.path.relpath(absolute_path, os.path.abspath(root)).replace(os.sep, "/")
        if not _SERVED.match(relative):
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def get_cache_time(self, path: str, modified, mime_type: str) -> int:
        return 30 * 24 * 3600

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # 403 is tornado's answer to a path outside the root: say no more than "not found".
        error = to_app_error(None, 404 if status_code == 403 else status_code)
        self.set_status(error.status)
        if error.status == 405:
            self.set_header("Allow", ", ".join(implemented_methods(type(self))))
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps(error.body()))

    @streamed(auth=False, summary="A media file (local storage); supports Range requests",
              tags=TAGS)
    async def get(self, path: str, include_body: bool = True) -> None:
        await super().get(path, include_body)

    @streamed(auth=False, summary="A media file's headers", tags=TAGS)
    async def head(self, path: str) -> None:
        await super().get(path, include_body=False)


@dataclass(frozen=True)
class MediaFilesRoute(Route):
    """`/v1/media/files/{path}` where the path holds slashes (the object key)."""

    def spec(self) -> URLSpec:
        return URLSpec(r"/v1/media/files/(?P<path>.+)$", self.handler,
                       {"route_template": self.template, "path_types": {}}, name=self.name)


def files_route() -> Route:
    return MediaFilesRoute("/v1/media/files/{path}", MediaFileHandler, "media.file")

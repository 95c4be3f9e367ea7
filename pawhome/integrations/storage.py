"""Object storage for media, behind one interface: Tencent COS in production, a directory on
local disk in embedded mode and tests (MEDIA_STORAGE = cos | local).

Every method blocks (the COS SDK is synchronous; local disk is file I/O): workers call them
directly, the gateway through `asyncio.to_thread`. Clients never write through the gateway
to COS: they PUT to a presigned URL. With the local backend the "presigned URL" is a signed
gateway URL, `PUT /v1/media/upload/{token}`, that handlers/media.py accepts and writes here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit

import jwt

from settings import Settings

UPLOAD_TOKEN_AUDIENCE = "pawhome-media-upload"


@dataclass(frozen=True)
class PresignedUpload:
    url: str
    method: str = "PUT"
    headers: dict[str, str] = field(default_factory=dict)
    expires_in: int = 0


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str = ""


class StorageError(Exception):
    """The store refused or failed an operation (not "object missing": head returns None)."""


class Storage(Protocol):
    def presign_put(self, key: str, *, media_id: int, content_type: str, size: int,
                    expires: int) -> PresignedUpload: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def download(self, key: str, path: Path) -> None: ...
    def put_file(self, key: str, path: Path, content_type: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def public_url(self, key: str) -> str: ...
    def upload_origin(self) -> str: ...
    def create_multipart(self, key: str, content_type: str) -> str: ...
    def upload_part(self, key: str, upload_id: str, part_number: int, path: Path) -> str: ...
    def complete_multipart(self, key: str, upload_id: str,
                           parts: list[tuple[int, str]]) -> None: ...
    def abort_multipart(self, key: str, upload_id: str) -> None: ...


def new_key(extension: str, now: float | None = None) -> str:
    """A server-chosen object key: media/<yyyy>/<mm>/<uuid>.<ext>. Never from the client."""
    stamp = time.gmtime(now if now is not None else time.time())
    return f"media/{stamp.tm_year:04d}/{stamp.tm_mon:02d}/{uuid.uuid4().hex}.{extension}"


def variant_prefix(key: str) -> str:
    """Derived files of an original live beside it: media/2025/11/<uuid>/w480.webp."""
    return key.rsplit(".", 1)[0] + "/"


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- local disk -------------------------------------------------------------------------------


def sign_upload_token(settings: Settings, *, key: str, media_id: int, size: int,
                      expires: int) -> str:
    """The credential inside a local upload URL: which key, for which media row, how big."""
    claims = {"aud": UPLOAD_TOKEN_AUDIENCE, "key": key, "mid": media_id, "size": size,
              "exp": int(time.time()) + expires}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def read_upload_token(settings: Settings, token: str) -> dict:
    """The claims of a valid, unexpired upload token; raises jwt.InvalidTokenError."""
    return jwt.decode(token, settings.jwt_secret, algorithms=["HS256"],
                      audience=UPLOAD_TOKEN_AUDIENCE, options={"require": ["exp", "aud"]})


class LocalStorage:
    """Objects are files under MEDIA_ROOT named by their key; multipart parts wait in
    MEDIA_ROOT/.multipart/<upload id>/ until completed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.media_root).resolve()

    def path_of(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"key escapes the media root: {key!r}")
        return path

    def scratch_dir(self) -> Path:
        """Where the gateway streams an upload before moving it into place (same disk)."""
        path = self.root / ".incoming"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def presign_put(self, key: str, *, media_id: int, content_type: str, size: int,
                    expires: int) -> PresignedUpload:
        token = sign_upload_token(self.settings, key=key, media_id=media_id, size=size,
                                  expires=expires)
        base = self.settings.public_base_url.rstrip("/")
        return PresignedUpload(url=f"{base}/v1/media/upload/{token}", method="PUT",
                               headers={"Content-Type": content_type}, expires_in=expires)

    def upload_origin(self) -> str:
        """Where presigned PUTs go (a browser page's CSP connect-src): the gateway."""
        return _origin(self.settings.public_base_url)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            return ObjectInfo(size=self.path_of(key).stat().st_size)
        except FileNotFoundError:
            return None

    def download(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self.path_of(key), path)
        except FileNotFoundError as error:
            raise StorageError(f"no object {key!r}") from error

    def put_file(self, key: str, path: Path, content_type: str = "") -> None:
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy to a temporary name and rename: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def move_into_place(self, key: str, path: Path) -> None:
        """Like put_file for a file already on the media disk (an upload just streamed)."""
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def public_url(self, key: str) -> str:
        base = (self.settings.media_public_base_url
                or self.settings.public_base_url.rstrip("/") + "/v1/media/files")
        return f"{base.rstrip('/')}/{quote(key)}"

    def _parts_dir(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise StorageError("bad upload id")
        return self.root / ".multipart" / upload_id

    def create_multipart(self, key: str, content_type: str = "") -> str:
        upload_id = uuid.uuid4().hex
        self._parts_dir(upload_id).mkdir(parents=True, exist_ok=True)
        return upload_id

    def upload_part(self, key: str, upload_id: str, part_number: int, path: Path) -> str:
        directory = self._parts_dir(upload_id)
        if not directory.is_dir():
            raise StorageError("no such multipart upload")
        etag = _md5_of(path)
        shutil.move(str(path), directory / f"{part_number:05d}.part")
        return etag

    def complete_multipart(self, key: str, upload_id: str,
                           parts: list[tuple[int, str]]) -> None:
        directory = self._parts_dir(upload_id)
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".assemble-")
        try:
            with os.fdopen(fd, "wb") as out:
                for number, etag in sorted(parts):
                    part = directory / f"{number:05d}.part"
                    if not part.exists() or _md5_of(part) != etag:
                        raise StorageError(f"part {number} is missing or changed")
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        shutil.rmtree(directory, ignore_errors=True)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        shutil.rmtree(self._parts_dir(upload_id), ignore_errors=True)


# -- Tencent COS ------------------------------------------------------------------------------


def _header(reply: dict, name: str) -> str:
    """A response header from the SDK's plain dict, whatever case the server used."""
    for key, value in (reply or {}).items():
        if key.lower() == name:
            return str(value)
    return ""


class CosStorage:
    """Tencent COS through cos-python-sdk-v5. Signing (presigned URLs) needs no network."""

    def __init__(self, settings: Settings) -> None:
        from qcloud_cos import CosConfig, CosS3Client

        self.settings = settings
        self.bucket = settings.cos_bucket
        config = CosConfig(Region=settings.cos_region, SecretId=settings.cos_secret_id,
                           SecretKey=settings.cos_secret_key, Scheme=settings.cos_scheme,
                           Domain=settings.cos_domain or None, Timeout=settings.cos_timeout)
        # retry=1: a failed call surfaces to the task, whose own retry has backoff.
        self.client = CosS3Client(config, retry=1)

    def _error(self, error: Exception) -> StorageError:
        return StorageError(f"COS: {type(error).__name__}: {str(error)[:200]}")

    def presign_put(self, key: str, *, media_id: int, content_type: str, size: int,
                    expires: int) -> PresignedUpload:
        # Content-Type and Content-Length are signed: COS refuses a PUT of another type or
        # size than declared. The client sends Content-Type; its HTTP stack sets the length.
        headers = {"Content-Type": content_type}
        url = self.client.get_presigned_url(Bucket=self.bucket, Key=key, Method="PUT",
                                            Expired=expires,
                                            Headers={**headers, "Content-Length": str(size)})
        return PresignedUpload(url=url, method="PUT", headers=headers, expires_in=expires)

    def head(self, key: str) -> ObjectInfo | None:
        from qcloud_cos.cos_exception import CosServiceError

        try:
            reply = self.client.head_object(Bucket=self.bucket, Key=key)
        except CosServiceError as error:
            if error.get_status_code() == 404:
                return None
            raise self._error(error) from error
        return ObjectInfo(size=int(_header(reply, "content-length") or 0),
                          etag=_header(reply, "etag").strip('"'))

    def download(self, key: str, path: Path) -> None:
        from qcloud_cos.cos_exception import CosException

        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
            reply["Body"].get_stream_to_file(str(path))
        except CosException as error:
            raise self._error(error) from error

    def put_file(self, key: str, path: Path, content_type: str = "") -> None:
        from qcloud_cos.cos_exception import CosException

        try:
            with open(path, "rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                       ContentType=content_type or "application/octet-stream")
        except CosException as error:
            raise self._error(error) from error

    def delete(self, key: str) -> None:
        from qcloud_cos.cos_exception import CosException

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except CosException as error:
            raise self._error(error) from error

    def _bucket_origin(self) -> str:
        host = self.settings.cos_domain or \
            f"{self.bucket}.cos.{self.settings.cos_region}.myqcloud.com"
        return f"{self.settings.cos_scheme}://{host}"

    def public_url(self, key: str) -> str:
        base = self.settings.media_public_base_url or self._bucket_origin()
        return f"{base.rstrip('/')}/{quote(key)}"

    def upload_origin(self) -> str:
        """Where presigned PUTs go (a browser page's CSP connect-src): the bucket's host, as
        the SDK signs it (the custom domain when one is set)."""
        return self._bucket_origin()

    def create_multipart(self, key: str, content_type: str = "") -> str:
        from qcloud_cos.cos_exception import CosException

        try:
            reply = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key,
                ContentType=content_type or "application/octet-stream")
        except CosException as error:
            raise self._error(error) from error
        return str(reply["UploadId"])

    def upload_part(self, key: str, upload_id: str, part_number: int, path: Path) -> str:
        from qcloud_cos.cos_exception import CosException

        try:
            with open(path, "rb") as body:
                reply = self.client.upload_part(Bucket=self.bucket, Key=key, Body=body,
                                                PartNumber=part_number, UploadId=upload_id)
        except CosException as error:
            raise self._error(error) from error
        return _header(reply, "etag").strip('"')

    def complete_multipart(self, key: str, upload_id: str,
                           parts: list[tuple[int, str]]) -> None:
        from qcloud_cos.cos_exception import CosException

        listing = {"Part": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in sorted(parts)]}
        try:
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key,
                                                  UploadId=upload_id, MultipartUpload=listing)
        except CosException as error:
            raise self._error(error) from error

    def abort_multipart(self, key: str, upload_id: str) -> None:
        from qcloud_cos.cos_exception import CosException

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except CosException as error:
            raise self._error(error) from error


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


_stores: dict[tuple, Storage] = {}


def storage_for(settings: Settings) -> Storage:
    """The process's store for these settings (one COS client, with its connection pool)."""
    cache_key = (settings.media_storage, settings.media_root, settings.cos_bucket,
                 settings.cos_domain, settings.cos_region, settings.public_base_url,
                 settings.media_public_base_url)
    store = _stores.get(cache_key)
    if store is None:
        store = CosStorage(settings) if settings.media_storage == "cos" else \
            LocalStorage(settings)
        _stores[cache_key] = store
    return store

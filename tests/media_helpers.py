"""Files and flows the media tests share: images made with Pillow (with GPS EXIF and an
orientation tag), hostile files (a renamed executable, a pixel bomb, a truncated JPEG), and
`upload(...)`, which goes through the real REST flow against the local storage backend.
"""
from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from urllib.parse import urlsplit

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg_bytes(width: int = 1600, height: int = 1200, *, gps: bool = False,
               orientation: int | None = None, split_colours: bool = False) -> bytes:
    """A JPEG; `split_colours` paints the left half red and the right half blue, so a test
    can tell which way it was turned."""
    image = Image.new("RGB", (width, height), (40, 160, 90))
    if split_colours:
        image.paste((255, 0, 0), (0, 0, width // 2, height))
        image.paste((0, 0, 255), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[0x010F] = "PawCam"  # Make
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (31.0, 14.0, 5.5), 3: "E", 4: (121.0, 28.0, 9.1)}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def png_bytes(width: int, height: int, noise: bool = False) -> bytes:
    # Random pixels do not compress: the PNG is about 3 bytes a pixel.
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)) if noise \
        else Image.new("RGB", (width, height), (200, 120, 40))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pixel_bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid-looking PNG header claiming width x height grey pixels, with one tiny IDAT:
    a few hundred bytes on disk, 400 MP if anyone decoded it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + _png_chunk(b"IEND", b""))


def elf_executable() -> bytes:
    """The start of an x86-64 ELF executable (what a renamed `evil.jpg` really is)."""
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x90" * 4000


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_of(url: str) -> str:
    """The path of a URL the gateway built (its public base differs from the test server)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def start_upload(api, user, data: bytes, kind: str = "image",
                       content_type: str = "image/jpeg", with_sha: bool = False) -> dict:
    body = {"kind": kind, "size": len(data), "content_type": content_type}
    if with_sha:
        body["sha256"] = sha256(data)
    reply = await api.post("/v1/media", json=body, token=user.token)
    return reply.json["data"] if reply.status in (200, 201) else reply.error(reply.status)


def worker_variants(prefix: str, widths: tuple[int, ...] = (240, 480, 1080),
                    height_ratio: float = 0.75) -> dict:
    """Media.variants as the media worker writes them (pawhome.media.processing.process_media): a
    JPEG
    and a WebP per width, each {"key", "width", "height", "content_type"}."""
    return {f"w{width}.{ext}": {"key": f"{prefix}w{width}.{ext}", "width": width,
                                "height": round(width * height_ratio),
                                "content_type": f"image/{'jpeg' if ext == 'jpg' else ext}"}
            for width in widths for ext in ("jpg", "webp")}


async def upload(api, user, data: bytes, kind: str = "image",
                 content_type: str = "image/jpeg", with_sha: bool = False) -> int:
    """Start, PUT the bytes to the returned URL, complete; returns the media id."""
    started = await start_upload(api, user, data, kind, content_type, with_sha)
    assert started["instant"] is False, started
    put = await api.request("PUT", path_of(started["upload_url"]), body=data,
                            headers=started["headers"])
    put.ok()
    completed = (await api.post(f"/v1/media/{started['media_id']}/complete",
                                token=user.token)).ok()
    assert completed["status"] == "uploaded", completed
    return started["media_id"]

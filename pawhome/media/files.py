"""What the media worker does to one file on local disk: find its real type from its bytes,
refuse what we do not serve, and make the files we do serve (EXIF-free variants, posters).

Pure functions over paths — no database, no storage — so they are easy to test and to run
anywhere (the worker, the embedded in-process executor). pawhome/media/uploads.py orchestrates.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import filetype
from PIL import Image, ImageFile, ImageOps

# Declared content types a client may upload, by kind, with the extension of the stored key.
IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
               "image/gif": "gif"}
VIDEO_TYPES = {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}
TYPES_BY_KIND = {"image": IMAGE_TYPES, "video": VIDEO_TYPES}
# Sniffed types (filetype) we treat as the same container as a declared one.
_VIDEO_ALIASES = {"video/x-m4v": "video/mp4", "video/3gpp": "video/mp4"}

JPEG_QUALITY = 82
WEBP_QUALITY = 80


class MediaRejected(Exception):
    """The file is not acceptable; the message is the reason stored on the media record."""


@dataclass
class VariantFile:
    name: str  # "w480.webp", "poster.jpg", "video.mp4"
    path: Path
    content_type: str
    width: int | None = None
    height: int | None = None


@dataclass
class Processed:
    content_type: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    variants: list[VariantFile] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sniff(path: Path) -> str | None:
    """The MIME type told by the file's magic bytes (never its name or a header), or None."""
    kind = filetype.guess(str(path))
    if kind is None:
        return None
    return _VIDEO_ALIASES.get(kind.mime, kind.mime)


def _mb(n: int) -> str:
    return f"{n / (1 << 20):g} MB"


def check_content(path: Path, kind: str, max_bytes: int) -> str:
    """The real content type of an upload declared as `kind`; MediaRejected if it is not one
    we accept, or too large."""
    size = path.stat().st_size
    if size > max_bytes:
        raise MediaRejected(f"file is {_mb(size)}, over the {_mb(max_bytes)} limit for {kind}s")
    if size == 0:
        raise MediaRejected("file is empty")
    detected = sniff(path)
    if detected not in TYPES_BY_KIND[kind]:
        what = f"detected {detected}" if detected else "unrecognised content"
        raise MediaRejected(f"not an {kind} ({what})" if kind == "image"
                            else f"not a {kind} ({what})")
    return detected


# -- images ----------------------------------------------------------------------------------


def target_widths(width: int, widths: list[int]) -> list[int]:
    """The variant widths for an image this wide: never upscaled, so a small image gets one
    variant at its own width instead of blurry enlargements."""
    return sorted({min(w, width) for w in widths if w > 0})


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for JPEG: transparent areas become white rather than black."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def open_image_checked(path: Path, max_pixels: int,
                       decode_box: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image fully, refusing decompression bombs and truncated or corrupt files.
    Returns an upright copy (EXIF orientation applied) that carries no metadata, and the
    upright size of the original. With `decode_box`, a JPEG may be decoded at a reduced
    scale that still covers decode_box x decode_box (the largest variant): 2-4x faster."""
    # Pillow checks the pixel count when it reads the header, before decoding anything:
    # a 20000x20000 PNG of a few KB is refused without allocating 1.6 GB.
    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    limit = f"{max_pixels / 1e6:g} MP"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as source:
                width, height = source.size
                if width * height > max_pixels:
                    raise MediaRejected(f"image is {width}x{height} pixels, over the {limit} "
                                        "limit")
                orientation = source.getexif().get(0x0112, 1)
                full = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
                if decode_box and source.format == "JPEG":
                    source.draft("RGB", (decode_box, decode_box))
                source.seek(0)  # animated images: the first frame
                source.load()
                upright = ImageOps.exif_transpose(source)
                # A fresh image from the pixels alone: no EXIF (GPS), no XMP, no comments.
                clean = Image.new(upright.mode, upright.size)
                clean.paste(upright)
                if upright.mode == "P":
                    clean.putpalette(upright.getpalette() or [])
                    if "transparency" in upright.info:
                        clean.info["transparency"] = upright.info["transparency"]
                return clean, full
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise MediaRejected(f"image has too many pixels (decompression bomb guard, "
                            f"limit {limit})") from error
    except MediaRejected:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as error:
        raise MediaRejected("image is corrupt or truncated") from error


def write_image_variants(image: Image.Image, workdir: Path, widths: list[int],
                         prefix: str = "w") -> list[VariantFile]:
    """JPEG and WebP at each target width; saved without any metadata."""
    out: list[VariantFile] = []
    rgb = _flatten(image)
    keep_alpha = image.mode in ("RGBA", "LA", "P") and \
        image.convert("RGBA").getextrema()[3][0] < 255  # some pixel is see-through
    webp_source = image.convert("RGBA") if keep_alpha else rgb
    for width in target_widths(image.width, widths):
        height = max(1, round(image.height * width / image.width))
        size = (width, height)
        jpeg = rgb if rgb.size == size else rgb.resize(size, Image.Resampling.LANCZOS,
                                                      reducing_gap=3.0)
        webp = webp_source if webp_source.size == size else webp_source.resize(
            size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        jpeg_path = workdir / f"{prefix}{width}.jpg"
        webp_path = workdir / f"{prefix}{width}.webp"
        jpeg.save(jpeg_path, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
        webp.save(webp_path, "WEBP", quality=WEBP_QUALITY, method=4)
        out.append(VariantFile(jpeg_path.name, jpeg_path, "image/jpeg", width, height))
        out.append(VariantFile(webp_path.name, webp_path, "image/webp", width, height))
    return out


def process_image(path: Path, workdir: Path, *, max_pixels: int,
                  widths: list[int]) -> Processed:
    image, (width, height) = open_image_checked(path, max_pixels, decode_box=max(widths))
    return Processed(content_type="", width=width, height=height,
                     variants=write_image_variants(image, workdir, widths))


# -- video -----------------------------------------------------------------------------------


def _tools(ffmpeg: str, ffprobe: str) -> tuple[str, str]:
    ffmpeg_bin, ffprobe_bin = shutil.which(ffmpeg), shutil.which(ffprobe)
    if not ffmpeg_bin or not ffprobe_bin:
        raise MediaRejected("ffmpeg not installed")
    return ffmpeg_bin, ffprobe_bin


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise MediaRejected(f"video processing took over {timeout:g}s") from error


def probe_video(path: Path, ffprobe: str, timeout: float) -> tuple[int, int, int]:
    """(duration_ms, width, height) of the first video stream; MediaRejected if none."""
    result = _run([ffprobe, "-v", "error", "-print_format", "json", "-show_format",
                   "-show_streams", str(path)], timeout)
    if result.returncode != 0:
        raise MediaRejected("video is corrupt or unreadable")
    info = json.loads(result.stdout or b"{}")
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    if not streams:
        raise MediaRejected("not a video (no video stream)")
    stream = streams[0]
    duration = float(info.get("format", {}).get("duration") or stream.get("duration") or 0)
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    rotation = 0
    for side in stream.get("side_data_list", []) or []:
        rotation = int(side.get("rotation", rotation) or 0)
    rotation = int(stream.get("tags", {}).get("rotate", rotation) or 0)
    if abs(rotation) in (90, 270):
        width, height = height, width
    return int(duration * 1000), width, height


def process_video(path: Path, workdir: Path, content_type: str, *, ffmpeg: str, ffprobe: str,
                  timeout: float, max_pixels: int, poster_width: int) -> Processed:
    """Duration and size from ffprobe, a poster frame, and a copy of the video without its
    metadata (phones write GPS into videos too) and with the index up front for streaming."""
    ffmpeg_bin, ffprobe_bin = _tools(ffmpeg, ffprobe)
    duration_ms, width, height = probe_video(path, ffprobe_bin, timeout)
    at = min(1.0, duration_ms / 2000) if duration_ms else 0
    frame = workdir / "poster-frame.png"
    result = _run([ffmpeg_bin, "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", str(path),
                   "-frames:v", "1", str(frame)], timeout)
    if result.returncode != 0 or not frame.exists():
        raise MediaRejected("could not extract a poster frame")
    extension = VIDEO_TYPES[content_type]
    clean = workdir / f"video.{extension}"
    remux = [ffmpeg_bin, "-v", "error", "-y", "-i", str(path), "-map", "0:v", "-map", "0:a?",
             "-map_metadata", "-1", "-c", "copy"]
    if extension in ("mp4", "mov"):
        remux += ["-movflags", "+faststart"]
    result = _run([*remux, str(clean)], timeout)
    if result.returncode != 0:
        raise MediaRejected("video is corrupt or unreadable")
    poster, _ = open_image_checked(frame, max_pixels)
    variants = write_image_variants(poster, workdir, [poster_width], prefix="poster.w")
    variants.append(VariantFile(clean.name, clean, content_type, width, height))
    return Processed(content_type=content_type, width=width, height=height,
                     duration_ms=duration_ms, variants=variants)

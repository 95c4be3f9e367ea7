"""The baseline generator: a virtual pet from real image analysis of the photo (OpenCV).

Pure functions over a file on disk and arrays — no database, no storage, no clock — so they
run anywhere (the `ai` worker, the embedded in-process executor) and are tested directly.
The stages: decode (type by content, the pixel-count guard and the EXIF orientation of
pawhome/media/files.py; a big JPEG is decoded at a reduced scale), find the animal (the
cat-face Haar cascade shipped with opencv-python-headless 4.x, else a spectral-residual
saliency crop, else a centre crop), measure it (k-means fur colours, brightness, saturation,
edge density and stripe coherence), map the measures to the pet's parameters and render a
stylised sprite and a thumbnail. Deterministic: k-means is seeded and its attempts are
fixed, so the same photo always gives the same parameters. docs/virtual-pet.md
("Generation").
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from pawhome.media.files import MediaRejected, check_content, open_image_checked

Image = NDArray[Any]  # an 8-bit BGR or BGRA picture (OpenCV's typing is loose)
# (the cat face or None, the square crop of the animal, how it was found)
Subject = tuple[tuple[int, int, int, int] | None, tuple[int, int, int, int], str]

WORK_SIDE = 768  # the photo is analysed at most this large (longest side)
FEATURE_SIDE = 256  # the crop is measured at this size
SPRITE_SIDE = 512
THUMB_SIDE = 128
KMEANS_K = 4
KMEANS_SEED = 13
KMEANS_ATTEMPTS = 3
STRIPES_COHERENCE = 0.2

CASCADE_FILE = "haarcascade_frontalcatface.xml"
SPECIES = ("cat", "dog", "other")
PATTERNS = ("solid", "stripes", "spots", "patches")


class PhotoRejected(MediaRejected):
    """The photo cannot make a pet; the message is the generation's reason."""


@dataclass
class Features:
    """What the analysis measured on the crop of the animal."""
    face: tuple[int, int, int, int] | None  # the cat face found (x, y, w, h) in the work image
    crop: tuple[int, int, int, int]  # the square crop (x, y, side, side) in the work image
    found_by: str  # cat_face | saliency | centre
    colours: list[tuple[str, float]]  # (hex, share), most common first
    brightness: float  # 0-1, mean value (HSV) of the animal
    saturation: float  # 0-1
    edge_density: float  # 0-1, share of Canny edge pixels
    coherence: float  # 0-1, how much the texture runs one way (stripes)
    spot_count: int  # separate blobs of the second colour
    pattern: str = "solid"
    silhouette: float = 1.0  # height / width of the subject's outline
    eye_aspect: float | None = None  # width / height of the dark eye blobs, if seen
    extra: dict[str, Any] = field(default_factory=dict)


# -- decoding --------------------------------------------------------------------------------


def load_photo(path: Path, *, max_bytes: int, max_pixels: int) -> Image:
    """The photo as a BGR array no larger than WORK_SIDE; PhotoRejected for what is not an
    image we read (by its bytes, not its name) or has too many pixels."""
    try:
        check_content(path, "image", max_bytes)
        picture, _size = open_image_checked(path, max_pixels, decode_box=WORK_SIDE)
    except MediaRejected as rejected:
        raise PhotoRejected(str(rejected)) from rejected
    rgb = np.asarray(picture.convert("RGB"), dtype=np.uint8)
    bgr: Image = np.ascontiguousarray(rgb[:, :, ::-1])
    height, width = bgr.shape[:2]
    if min(height, width) < 32:
        raise PhotoRejected(f"image is {width}x{height} pixels: too small to see a pet in")
    scale = WORK_SIDE / max(height, width)
    if scale < 1:
        bgr = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA)
    return bgr


# -- finding the animal ------------------------------------------------------------------------

_local = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """The cat-face cascade, one per thread (a classifier is not safe to share)."""
    cascade = getattr(_local, "cascade", None)
    if cascade is None:
        cascade = cv2.CascadeClassifier(
            str(Path(cv2.data.haarcascades) / CASCADE_FILE))  # type: ignore[attr-defined]
        if cascade.empty():
            raise RuntimeError(f"OpenCV has no {CASCADE_FILE} (opencv-python-headless 4.x "
                               "ships it)")
        _local.cascade = cascade
    return cascade


def find_cat_face(bgr: Image) -> tuple[int, int, int, int] | None:
    """The largest cat face the cascade finds (x, y, w, h), or None."""
    gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    side = max(24, min(gray.shape) // 8)
    faces = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                        minSize=(side, side))
    if len(faces) == 0:
        return None
    x, y, w, h = max((tuple(int(v) for v in f) for f in faces), key=lambda f: (f[2] * f[3], f))
    return x, y, w, h


def saliency_map(bgr: Image) -> NDArray[Any]:
    """Spectral-residual saliency (Hou & Zhang 2007) at the image's size, 0-1: what stands out
    of the photo's usual texture (cv2.saliency is in the contrib build, which we do not use)."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    small = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA)
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-6).astype(np.float32)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3))
    back = np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))
    saliency = cv2.GaussianBlur((np.abs(back) ** 2).astype(np.float32), (9, 9), 2.5)
    saliency = cv2.resize(saliency, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_LINEAR)
    top = float(saliency.max())
    return saliency / top if top > 0 else saliency


def _square(cx: float, cy: float, side: float, width: int,
            height: int) -> tuple[int, int, int, int]:
    """A square of `side` centred near (cx, cy), moved (and shrunk) to fit the image."""
    side = int(min(side, width, height))
    x = round(min(max(cx - side / 2, 0), width - side))
    y = round(min(max(cy - side / 2, 0), height - side))
    return x, y, side, side


def find_subject(bgr: Image) -> Subject:
    """Where the animal is: a cat face, else what stands out, else the centre."""
    height, width = bgr.shape[:2]
    face = find_cat_face(bgr)
    if face is not None:
        x, y, w, h = face
        # The head and some of the body: the face box covers eyes to chin, not the ears.
        return face, _square(x + w / 2, y + h * 0.55, max(w, h) * 2.0, width, height), "cat_face"
    saliency = saliency_map(bgr)
    mask = (saliency > max(0.25, float(saliency.mean()) * 3)).astype(np.uint8)
    if mask.any():
        ys, xs = np.nonzero(mask)
        x0, x1 = np.percentile(xs, (5, 95))
        y0, y1 = np.percentile(ys, (5, 95))
        area = (x1 - x0) * (y1 - y0)
        if area >= 0.05 * width * height:
            side = max(x1 - x0, y1 - y0) * 1.15
            return None, _square((x0 + x1) / 2, (y0 + y1) / 2, side, width, height), "saliency"
    return None, _square(width / 2, height / 2, min(width, height) * 0.85, width, height), "centre"


# -- measuring ---------------------------------------------------------------------------------


def _hex(bgr: NDArray[Any]) -> str:
    b, g, r = (round(float(v)) for v in bgr)
    return f"#{r:02x}{g:02x}{b:02x}"


def _subject_mask(side: int) -> NDArray[Any]:
    """The centre ellipse of the crop: the animal, mostly, rather than the background."""
    mask = np.zeros((side, side), np.uint8)
    cv2.ellipse(mask, (side // 2, side // 2), (int(side * 0.36), int(side * 0.42)), 0, 0, 360,
                255, -1)
    return mask


def dominant_colours(crop: Image, mask: NDArray[Any]) -> tuple[list[tuple[str, float]],
                                                                      NDArray[Any],
                                                                      NDArray[Any]]:
    """k-means over the animal's pixels: [(hex, share)] most common first (near-identical
    clusters merged, slivers under 4 % dropped), the label of each masked pixel, the centres."""
    samples = crop[mask > 0].reshape(-1, 3).astype(np.float32)
    cv2.setRNGSeed(KMEANS_SEED)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.5)
    _compactness, labels, centres = cv2.kmeans(  # type: ignore[call-overload]
        samples, KMEANS_K, None, criteria, KMEANS_ATTEMPTS, cv2.KMEANS_PP_CENTERS)
    labels = labels.reshape(-1).astype(np.int32)
    counts = np.bincount(labels, minlength=KMEANS_K).astype(np.float64)
    order = sorted(range(KMEANS_K), key=lambda i: (-counts[i], _hex(centres[i])))
    picked: list[tuple[NDArray[Any], float]] = []
    for i in order:
        share = counts[i] / counts.sum()
        for j, (centre, kept) in enumerate(picked):
            if float(np.linalg.norm(centre - centres[i])) < 28:
                picked[j] = (centre, kept + share)
                break
        else:
            picked.append((centres[i], share))
    colours = [(_hex(c), round(float(s), 3)) for c, s in picked if s >= 0.04]
    return colours, labels, centres


def stripe_coherence(gray: NDArray[Any], mask: NDArray[Any]) -> float:
    """How much the animal's gradients share one direction (0 none, 1 all): the coherence of
    the structure tensor summed over the whole animal. An outline or fur turns every way and
    cancels out; a tabby's stripes, a zebra's, run together."""
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    inside = mask > 0
    jxx, jyy = float((gx * gx)[inside].sum()), float((gy * gy)[inside].sum())
    jxy = float((gx * gy)[inside].sum())
    trace = jxx + jyy
    return float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / trace) if trace > 0 else 0.0


def measure(bgr: Image, subject: Subject) -> Features:
    """Measure the animal `find_subject` found."""
    face, (x, y, side, _), found_by = subject
    crop = cv2.resize(bgr[y:y + side, x:x + side], (FEATURE_SIDE, FEATURE_SIDE),
                      interpolation=cv2.INTER_AREA)
    mask = _subject_mask(FEATURE_SIDE)
    colours, labels, centres = dominant_colours(crop, mask)
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    inside = mask > 0
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), 60, 150)
    features = Features(
        face=face, crop=(x, y, side, side), found_by=found_by, colours=colours,
        brightness=round(float(hsv[..., 2][inside].mean()) / 255, 3),
        saturation=round(float(hsv[..., 1][inside].mean()) / 255, 3),
        edge_density=round(float((edges[inside] > 0).mean()), 3),
        coherence=round(stripe_coherence(gray, mask), 3),
        spot_count=_second_colour_blobs(labels, mask, centres, colours))
    features.pattern = _pattern(features)
    features.silhouette = _silhouette(gray, mask)
    features.eye_aspect = _eye_aspect(gray)
    return features


def _second_colour_blobs(labels: NDArray[Any], mask: NDArray[Any],
                         centres: NDArray[Any], colours: list[tuple[str, float]]) -> int:
    """Separate blobs (over 12 px) of the second most common colour: many small ones are
    spots, a few large ones patches."""
    if len(colours) < 2:
        return 0
    counts = np.bincount(labels, minlength=len(centres))
    second = int(np.argsort(-counts, kind="stable")[1])
    plane: NDArray[Any] = np.zeros(mask.shape, np.uint8)
    plane[mask > 0] = (labels == second).astype(np.uint8) * 255
    plane = cv2.morphologyEx(plane, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(plane, connectivity=8)
    return int(sum(1 for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] > 12))


def _pattern(f: Features) -> str:
    main_share = f.colours[0][1] if f.colours else 1.0
    if f.coherence >= STRIPES_COHERENCE and f.edge_density >= 0.05:
        return "stripes"
    if len(f.colours) > 1 and f.spot_count >= 8 and f.colours[1][1] >= 0.06 and \
            _distance(f.colours[0][0], f.colours[1][0]) >= 120:
        return "spots"  # many small blobs of a clearly different colour
    if main_share >= 0.7 or (f.edge_density < 0.04 and main_share >= 0.5):
        return "solid"
    return "patches"


def _distance(a: str, b: str) -> float:
    """Euclidean distance of two '#rrggbb' colours (0-441)."""
    return float(np.linalg.norm(np.array(_rgb(a), float) - np.array(_rgb(b), float)))


def _silhouette(gray: NDArray[Any], mask: NDArray[Any]) -> float:
    """Height / width of the subject's outline: the biggest Otsu region touching the centre,
    as a fitted ellipse (1 when there is none to fit)."""
    _, binary = cv2.threshold(cv2.GaussianBlur(gray, (5, 5), 0), 0, 255,
                              cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    centre = binary[binary.shape[0] // 2, binary.shape[1] // 2]
    region = ((binary == centre) & (mask > 0)).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 1.0
    largest = max(contours, key=cv2.contourArea)
    if len(largest) < 5:
        return 1.0
    (_, _), (w, h), _angle = cv2.fitEllipse(largest)
    return round(float(max(w, h) / max(1.0, min(w, h))), 3)


def _eye_aspect(gray: NDArray[Any]) -> float | None:
    """Width / height of the darkest blobs in the eye band of the crop (upper middle), the
    pupils and eye lines; None when there are no eye-like blobs."""
    side = gray.shape[0]
    band = gray[int(side * 0.2):int(side * 0.55), int(side * 0.15):int(side * 0.85)]
    limit = float(np.percentile(band, 6))
    dark: NDArray[Any] = (band <= limit).astype(np.uint8)
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    blobs = sorted((stats[i] for i in range(1, count) if 15 <= stats[i, cv2.CC_STAT_AREA]
                    <= band.size * 0.05), key=lambda s: -int(s[cv2.CC_STAT_AREA]))[:2]
    if not blobs:
        return None
    ratios = [s[cv2.CC_STAT_WIDTH] / max(1, s[cv2.CC_STAT_HEIGHT]) for s in blobs]
    return round(float(sum(ratios) / len(ratios)), 3)


# -- parameters --------------------------------------------------------------------------------


def _hue_of(hex_colour: str) -> tuple[float, float, float]:
    """(hue 0-360, saturation 0-1, value 0-1) of '#rrggbb'."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    pixel = np.array([[[b, g, r]]], np.uint8)
    h, s, v = cv2.cvtColor(pixel, cv2.COLOR_BGR2HSV)[0, 0]
    return float(h) * 2, float(s) / 255, float(v) / 255


def _contrast_colour(hex_colour: str) -> str:
    """A collar colour that stands out from the fur: the opposite hue, saturated, mid-bright."""
    hue, _s, _v = _hue_of(hex_colour)
    pixel = np.array([[[int(((hue + 180) % 360) / 2), 200, 210]]], np.uint8)
    return _hex(cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0])


def pick_personality(f: Features) -> str:
    """One of care's personalities (pawhome/virtualpet/care.py), from how the animal looks."""
    hue, sat, _ = _hue_of(f.colours[0][0]) if f.colours else (0.0, 0.0, 0.0)
    if 15 <= hue <= 45 and sat >= 0.35:
        return "greedy"  # ginger
    if f.pattern == "stripes":
        return "curious"
    if f.pattern == "spots":
        return "lively"
    if f.pattern == "patches":
        return "clingy"
    if f.brightness >= 0.65:
        return "tidy"
    if f.brightness <= 0.35:
        return "independent"
    return "calm"


def derive_params(f: Features, hints: dict[str, Any]) -> dict[str, Any]:
    """The pet's parameters from the measures (and the user's species hint)."""
    hinted = str(hints.get("species") or "").lower()
    species = hinted if hinted in SPECIES else ("cat" if f.face is not None else "other")
    fluffy = f.edge_density >= 0.12 and f.coherence < STRIPES_COHERENCE
    base_model = f"{species}_{'fluffy' if fluffy else 'sleek'}"
    if f.silhouette >= 1.45:
        face_shape = "long"
    elif f.silhouette <= 1.15:
        face_shape = "round"
    else:
        face_shape = "oval"
    if f.eye_aspect is None:
        eye_shape = "sleepy"
    elif f.eye_aspect >= 1.6:
        eye_shape = "almond"
    else:
        eye_shape = "round"
    colours = [c for c, _ in f.colours[:3]] or ["#888888"]
    markings = [f.pattern]
    for hex_colour, share in f.colours[1:]:
        _h, sat, value = _hue_of(hex_colour)
        if value >= 0.82 and sat <= 0.18 and 0.08 <= share <= 0.45:
            markings.append("white_patch")
            break
    accessories = [{"kind": "collar", "colour": _contrast_colour(colours[0])}]
    if species == "cat":
        accessories.append({"kind": "bell", "colour": "#f2c94c"})
    elif species == "dog":
        accessories.append({"kind": "tag", "colour": "#c0c0c0"})
    return {"species": species, "base_model": base_model, "colours": colours,
            "eye_shape": eye_shape, "face_shape": face_shape, "markings": markings,
            "accessories": accessories, "breed": str(hints.get("breed") or "")[:32],
            "features": {"found_by": f.found_by, "brightness": f.brightness,
                         "saturation": f.saturation, "edge_density": f.edge_density,
                         "coherence": f.coherence, "colour_shares": [s for _, s in f.colours]}}


# -- rendering ---------------------------------------------------------------------------------


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    """'#rrggbb' as OpenCV's BGR tuple."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return b, g, r


def render(bgr: Image, f: Features, params: dict[str, Any]) -> tuple[Image, Image]:
    """(sprite, thumbnail) as BGRA arrays: the stylised crop in a round body, with the
    parametric layers drawn from the parameters (ears by species, outline in the darkest fur
    colour, markings, collar and its charm)."""
    x, y, side, _ = f.crop
    size = SPRITE_SIDE
    radius = int(size * 0.38)
    centre = (size // 2, int(size * 0.56))
    crop = cv2.resize(bgr[y:y + side, x:x + side], (2 * radius, 2 * radius),
                      interpolation=cv2.INTER_AREA)
    styled = cv2.stylization(crop, sigma_s=60, sigma_r=0.45)
    canvas = np.zeros((size, size, 4), np.uint8)
    colours = params["colours"]
    main = _rgb(colours[0])
    outline = tuple(int(c * 0.45) for c in _rgb(min(colours, key=lambda c: _hue_of(c)[2])))
    # Ears under the body, coloured like the fur.
    ear_points = _ears(params["species"], centre, radius)
    for ear in ear_points:
        cv2.fillPoly(canvas, [ear], (*main, 255), lineType=cv2.LINE_AA)
        cv2.polylines(canvas, [ear], True, (*outline, 255), 6, lineType=cv2.LINE_AA)
    body = np.zeros((size, size), np.uint8)
    cv2.circle(body, centre, radius, 255, -1, lineType=cv2.LINE_AA)
    x0, y0 = centre[0] - radius, centre[1] - radius
    region = canvas[y0:y0 + 2 * radius, x0:x0 + 2 * radius]
    alpha = body[y0:y0 + 2 * radius, x0:x0 + 2 * radius, None].astype(np.float32) / 255
    region[..., :3] = (styled * alpha + region[..., :3] * (1 - alpha)).astype(np.uint8)
    region[..., 3] = np.maximum(region[..., 3], body[y0:y0 + 2 * radius, x0:x0 + 2 * radius])
    cv2.circle(canvas, centre, radius, (*outline, 255), 8, lineType=cv2.LINE_AA)
    _markings(canvas, params, centre, radius)
    _collar(canvas, params, centre, radius)
    thumb = cv2.resize(canvas, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    return canvas, thumb


def _ears(species: str, centre: tuple[int, int], radius: int) -> list[NDArray[Any]]:
    cx, cy = centre
    if species == "cat":  # pointed
        shapes = [[(-0.85, -0.35), (-0.7, -1.25), (-0.2, -0.85)],
                  [(0.85, -0.35), (0.7, -1.25), (0.2, -0.85)]]
    elif species == "dog":  # floppy
        shapes = [[(-0.75, -0.75), (-1.15, -0.1), (-0.95, 0.35), (-0.6, -0.3)],
                  [(0.75, -0.75), (1.15, -0.1), (0.95, 0.35), (0.6, -0.3)]]
    else:  # little round nubs
        shapes = [[(-0.6, -0.7), (-0.65, -1.05), (-0.35, -1.05), (-0.3, -0.85)],
                  [(0.6, -0.7), (0.65, -1.05), (0.35, -1.05), (0.3, -0.85)]]
    return [np.array([(cx + dx * radius, cy + dy * radius) for dx, dy in shape], np.int32)
            for shape in shapes]


def _markings(canvas: Image, params: dict[str, Any], centre: tuple[int, int],
              radius: int) -> None:
    """A hint of the coat's pattern on the forehead, in the second colour."""
    colours = params["colours"]
    second = _rgb(colours[1] if len(colours) > 1 else colours[0])
    cx, cy = centre
    pattern = params["markings"][0]
    if pattern == "stripes":
        for dx in (-0.18, 0.0, 0.18):
            top = (int(cx + dx * radius), int(cy - 0.92 * radius))
            bottom = (int(cx + dx * radius * 0.8), int(cy - 0.62 * radius))
            cv2.line(canvas, top, bottom, (*second, 255), 7, lineType=cv2.LINE_AA)
    elif pattern == "spots":
        for dx, dy in ((-0.3, -0.7), (0.25, -0.78), (0.05, -0.55)):
            cv2.circle(canvas, (int(cx + dx * radius), int(cy + dy * radius)),
                       int(radius * 0.07), (*second, 255), -1, lineType=cv2.LINE_AA)
    elif pattern == "patches":
        cv2.ellipse(canvas, (int(cx - 0.35 * radius), int(cy - 0.6 * radius)),
                    (int(radius * 0.25), int(radius * 0.18)), -20, 0, 360, (*second, 255), -1,
                    lineType=cv2.LINE_AA)


def _collar(canvas: Image, params: dict[str, Any], centre: tuple[int, int],
            radius: int) -> None:
    cx, cy = centre
    for accessory in params["accessories"]:
        colour = (*_rgb(accessory["colour"]), 255)
        if accessory["kind"] == "collar":
            cv2.ellipse(canvas, (cx, cy), (radius - 4, radius - 4), 0, 55, 125, colour, 16,
                        lineType=cv2.LINE_AA)
        else:  # the charm hanging from it: bell (cat), tag (dog)
            charm = (cx, int(cy + radius * 0.96))
            cv2.circle(canvas, charm, int(radius * 0.1), colour, -1, lineType=cv2.LINE_AA)
            cv2.circle(canvas, charm, int(radius * 0.1), (60, 60, 60, 255), 2,
                       lineType=cv2.LINE_AA)


def encode_webp(image: Image) -> bytes:
    """WebP keeps the sprite's transparency and is what the media files route serves."""
    ok, data = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 90])
    if not ok:
        raise RuntimeError("WebP encoding failed")
    return bytes(data.tobytes())

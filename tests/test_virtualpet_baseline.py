"""The baseline generator's image analysis, pure (pawhome/virtualpet/generation_baseline.py):
coats of known colours and patterns drawn here are measured as drawn; the parameters follow
the measures and the hints; the photo checks refuse what cannot make a pet."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pawhome.virtualpet import generation_baseline as baseline
from tests.generation_support import CAT_PHOTO, KITTEN_PHOTO


def _coat(bgr: tuple[int, int, int], seed: int = 1) -> np.ndarray:
    noise = np.random.RandomState(seed).randint(0, 12, (600, 800, 3)).astype(np.uint8)
    return cv2.add(np.full((600, 800, 3), bgr, np.uint8), noise)


def _measured(picture: np.ndarray) -> baseline.Features:
    return baseline.measure(picture, baseline.find_subject(picture))


def _rgb_of(hex_colour: str) -> tuple[int, ...]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def test_a_plain_black_coat_is_solid_dark_and_independent():
    f = _measured(_coat((40, 40, 40)))
    assert f.pattern == "solid" and len(f.colours) == 1
    assert all(abs(c - 45) < 12 for c in _rgb_of(f.colours[0][0]))
    assert f.brightness < 0.35 and baseline.pick_personality(f) == "independent"


def test_parallel_dark_bands_are_stripes_in_two_colours():
    coat = _coat((60, 140, 220))
    for y in range(-60, 600, 40):
        cv2.line(coat, (0, y), (800, y + 60), (20, 40, 80), 14)
    f = _measured(coat)
    assert f.pattern == "stripes" and f.coherence > 0.9
    first, second = (_rgb_of(c) for c, _ in f.colours[:2])
    assert first[0] > first[2] and sum(second) < sum(first)  # orange fur, dark bands


def test_many_small_dark_blots_on_white_are_spots():
    coat = _coat((235, 235, 235))
    rs = np.random.RandomState(2)
    for _ in range(150):
        cv2.circle(coat, (int(rs.randint(0, 800)), int(rs.randint(0, 600))), 12,
                   (20, 20, 20), -1)
    f = _measured(coat)
    assert f.pattern == "spots" and baseline.pick_personality(f) == "lively"


def test_a_few_large_areas_of_other_colours_are_patches():
    coat = _coat((235, 235, 235))
    cv2.ellipse(coat, (300, 250), (160, 110), 0, 0, 360, (30, 60, 140), -1)
    cv2.ellipse(coat, (520, 380), (120, 90), 30, 0, 360, (20, 20, 20), -1)
    f = _measured(coat)
    assert f.pattern == "patches" and len(f.colours) == 3


def test_parameters_follow_the_measures_and_the_hints():
    f = _measured(_coat((40, 40, 40)))
    params = baseline.derive_params(f, {})
    assert params["species"] == "other"  # no cat face, no hint
    assert params["colours"] == [f.colours[0][0]] and params["markings"] == ["solid"]
    assert params["accessories"][0]["kind"] == "collar"
    dog = baseline.derive_params(f, {"species": "dog", "breed": "Corgi"})
    assert (dog["species"], dog["base_model"], dog["breed"]) == ("dog", "dog_sleek", "Corgi")
    assert dog["accessories"][-1]["kind"] == "tag"
    f.face = (10, 10, 80, 80)
    assert baseline.derive_params(f, {})["species"] == "cat"


# Where the kitten's eyes and nose are in its work image (768×432), marked by hand.
KITTEN_EYES_AND_NOSE = ((352, 232), (432, 228), (396, 280))


def test_the_cascade_finds_the_real_kitten_face_and_the_pet_is_a_cat():
    photo = baseline.load_photo(KITTEN_PHOTO, max_bytes=1 << 22, max_pixels=10**7)
    assert photo.shape == (432, 768, 3)
    face = baseline.find_cat_face(photo)
    assert face is not None
    x, y, w, h = face
    assert all(x < px < x + w and y < py < y + h for px, py in KITTEN_EYES_AND_NOSE)
    assert 120 <= w <= 220  # the face, not the whole frame nor a patch of grass
    subject = baseline.find_subject(photo)
    assert subject[0] == face and subject[2] == "cat_face"
    cx, cy, side, _ = subject[1]  # the crop holds the face, with room for the ears
    assert cx <= x and cy <= y and x + w <= cx + side and y + h <= cy + side
    f = baseline.measure(photo, subject)
    params = baseline.derive_params(f, {})  # no hint: the face makes it a cat
    assert params["species"] == "cat" and params["features"]["found_by"] == "cat_face"
    hue, saturation, _value = baseline._hue_of(params["colours"][0])
    assert 15 <= hue <= 45 and saturation > 0.15  # ginger, as the kitten is


def test_a_close_up_without_a_whole_face_falls_back_without_a_false_face():
    """Chelsea fills the frame, chin cut off: the cascade must not invent a face in her fur
    (looser settings found one on her cheek), and the salient region is cropped instead."""
    photo = baseline.load_photo(CAT_PHOTO, max_bytes=1 << 22, max_pixels=10**6)
    assert baseline.find_cat_face(photo) is None
    face, _crop, found_by = baseline.find_subject(photo)
    assert face is None and found_by == "saliency"


def test_the_same_pixels_give_the_same_pet_and_sprite():
    photo = baseline.load_photo(CAT_PHOTO, max_bytes=1 << 22, max_pixels=10**6)
    runs = []
    for _ in range(2):
        f = _measured(photo.copy())
        params = baseline.derive_params(f, {"species": "cat"})
        sprite, thumb = baseline.render(photo, f, params)
        runs.append((params, baseline.pick_personality(f), sprite.tobytes()))
    assert runs[0] == runs[1]
    assert sprite.shape == (512, 512, 4) and thumb.shape == (128, 128, 4)
    assert sprite[0, 0, 3] == 0 and sprite[300, 256, 3] == 255  # a transparent background


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "file is empty"),
    (b"%PDF-1.7\n" + b"0" * 200, "not an image (detected application/pdf)"),
])
def test_files_that_are_no_images_are_refused(tmp_path: Path, content: bytes, reason: str):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(baseline.PhotoRejected, match=re.escape(reason)):
        baseline.load_photo(path, max_bytes=1 << 20, max_pixels=10**6)


def test_a_tiny_image_and_too_many_pixels_are_refused(tmp_path: Path, monkeypatch):
    # The decoder sets Pillow's process-wide pixel limit: put it back afterwards.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(baseline.PhotoRejected, match="too small"):
        baseline.load_photo(tiny, max_bytes=1 << 20, max_pixels=10**6)
    with pytest.raises(baseline.PhotoRejected, match="too many pixels"):
        baseline.load_photo(CAT_PHOTO, max_bytes=1 << 22, max_pixels=100_000)

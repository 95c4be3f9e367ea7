"""The generators behind one interface: `await generator.generate(photo, hints, progress)`
returns a `GeneratedPet` (parameters, personality, sprite and thumbnail PNGs) or raises
PhotoRejected with the reason the photo cannot make a pet.

- `BaselineGenerator`: the image analysis of generation_baseline.py, its blocking stages in
  threads, reporting each stage.
- `ExternalGenerator`: an AI provider over HTTP (VPET_AI_PROVIDER_URL) through the process's
  HTTP client, with a timeout per attempt and retries; whatever goes wrong with it (timeout,
  refused, an error status, a reply of the wrong shape, a sprite that is not an image) falls
  back to the baseline on the same photo. The provider's protocol is in docs/virtual-pet.md
  ("Adapter").
"""
from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pawhome.media.uploads import max_bytes
from pawhome.platform.resources import Resources
from pawhome.virtualpet import generation_baseline as baseline
from pawhome.virtualpet.generation_baseline import PhotoRejected
from settings import Settings

log = logging.getLogger("pawhome.virtualpet.generation")

Progress = Callable[[str], Awaitable[None]]  # called with a stage name as each one starts


@dataclass
class GeneratedPet:
    params: dict[str, Any]
    personality: str
    sprite: baseline.Image  # BGRA
    thumb: baseline.Image  # BGRA
    provider: str  # baseline | external


class Generator(Protocol):
    async def generate(self, photo: Path, hints: dict[str, Any],
                       progress: Progress) -> GeneratedPet: ...


class BaselineGenerator:
    """Real image analysis of the photo (pawhome/virtualpet/generation_baseline.py)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def load(self, photo: Path) -> baseline.Image:
        return await asyncio.to_thread(baseline.load_photo, photo,
                                       max_bytes=max_bytes(self.settings, "image"),
                                       max_pixels=self.settings.vpet_photo_max_pixels)

    async def generate(self, photo: Path, hints: dict[str, Any],
                       progress: Progress) -> GeneratedPet:
        await progress("detecting")
        return await self.generate_from(await self.load(photo), hints, progress,
                                        detecting_reported=True)

    async def generate_from(self, bgr: baseline.Image, hints: dict[str, Any],
                            progress: Progress, detecting_reported: bool = False) -> GeneratedPet:
        if not detecting_reported:
            await progress("detecting")
        subject = await asyncio.to_thread(baseline.find_subject, bgr)
        await progress("measuring")
        features = await asyncio.to_thread(baseline.measure, bgr, subject)
        await progress("parameters")
        params = baseline.derive_params(features, hints)
        personality = baseline.pick_personality(features)
        await progress("rendering")
        sprite, thumb = await asyncio.to_thread(baseline.render, bgr, features, params)
        return GeneratedPet(params=params, personality=personality, sprite=sprite, thumb=thumb,
                            provider="baseline")


# -- the external provider -----------------------------------------------------------------

Hex = str


class ProviderAccessory(BaseModel):
    kind: str = Field(min_length=1, max_length=24)
    colour: Hex = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class ProviderParams(BaseModel):
    """What a provider must return as the pet's parameters (the baseline's shape)."""
    model_config = ConfigDict(extra="ignore")
    species: Literal["cat", "dog", "other"]
    base_model: str = Field(min_length=1, max_length=32)
    colours: list[Hex] = Field(min_length=1, max_length=5)
    eye_shape: str = Field(min_length=1, max_length=16)
    face_shape: str = Field(min_length=1, max_length=16)
    markings: list[str] = Field(max_length=8)
    accessories: list[ProviderAccessory] = Field(max_length=8)


class ProviderReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    params: ProviderParams
    personality: str = Field(min_length=1, max_length=16)
    sprite: str = Field(min_length=8, max_length=8_000_000,
                        description="base64 PNG or WebP, up to 2048 px a side")


class ProviderFailed(Exception):
    """The provider did not give a usable pet (the baseline takes over)."""


def _decode_sprite(data: bytes) -> tuple[baseline.Image, baseline.Image]:
    """Blocking: the provider's sprite decoded (so it is a real image, and what we store is
    our own encoding of its pixels) as BGRA, and our thumbnail of it."""
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if picture is None or picture.ndim != 3 or min(picture.shape[:2]) < 16 or \
            max(picture.shape[:2]) > 2048:
        raise ProviderFailed("the sprite is not a usable image")
    if picture.shape[2] == 3:
        picture = cv2.cvtColor(picture, cv2.COLOR_BGR2BGRA)
    thumb = cv2.resize(picture, (baseline.THUMB_SIDE, baseline.THUMB_SIDE),
                       interpolation=cv2.INTER_AREA)
    return picture, thumb


def _jpeg(bgr: baseline.Image) -> bytes:
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


class ExternalGenerator:
    """An AI provider over HTTP, the baseline when it fails."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.baseline = BaselineGenerator(resources.settings)

    async def generate(self, photo: Path, hints: dict[str, Any],
                       progress: Progress) -> GeneratedPet:
        await progress("detecting")
        bgr = await self.baseline.load(photo)  # a photo the baseline refuses is refused here
        try:
            params, sprite_data, personality = await self._ask(bgr, hints)
            sprite, thumb = await asyncio.to_thread(_decode_sprite, sprite_data)
        except ProviderFailed as error:
            log.warning("AI provider failed, using the baseline: %s", error)
            return await self.baseline.generate_from(bgr, hints, progress,
                                                     detecting_reported=True)
        await progress("rendering")
        return GeneratedPet(params=params, personality=personality, sprite=sprite, thumb=thumb,
                            provider="external")

    async def _ask(self, bgr: baseline.Image, hints: dict[str, Any]
                   ) -> tuple[dict[str, Any], bytes, str]:
        """(params, sprite PNG, personality) from the provider, after up to 1 + retries
        attempts; ProviderFailed with the last reason."""
        photo = base64.b64encode(await asyncio.to_thread(_jpeg, bgr)).decode()
        headers = {"Authorization": f"Bearer {self.settings.vpet_ai_provider_token}"} \
            if self.settings.vpet_ai_provider_token else {}
        reason = "no attempt"
        for _attempt in range(1 + max(0, self.settings.vpet_ai_provider_retries)):
            try:
                response = await self.resources.http.post(
                    self.settings.vpet_ai_provider_url,
                    json={"photo_jpeg": photo, "hints": hints}, headers=headers,
                    timeout=self.settings.vpet_ai_provider_timeout)
            except httpx.TimeoutException:
                reason = f"timed out after {self.settings.vpet_ai_provider_timeout:g} s"
                continue
            except httpx.HTTPError as error:
                reason = f"unreachable: {error!r}"
                continue
            if response.status_code != 200:
                reason = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # our request is wrong: asking again will not help
                continue
            try:
                parsed = ProviderReply.model_validate_json(response.content)
                sprite = base64.b64decode(parsed.sprite, validate=True)
            except (ValidationError, ValueError) as error:
                raise ProviderFailed(f"a reply of the wrong shape: {str(error)[:200]}") \
                    from error
            params = parsed.params.model_dump()
            params["breed"] = str(hints.get("breed") or "")[:32]
            return params, sprite, parsed.personality
        raise ProviderFailed(reason)


def generator_for(resources: Resources) -> Generator:
    """The external provider when one is configured, else the baseline."""
    if resources.settings.vpet_ai_provider_url:
        return ExternalGenerator(resources)
    return BaselineGenerator(resources.settings)


__all__ = ["BaselineGenerator", "ExternalGenerator", "GeneratedPet", "Generator",
           "PhotoRejected", "Progress", "generator_for"]

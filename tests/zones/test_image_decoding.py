"""Pictures decoded at the size they are shown, in the decoder process: errors, limits, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import ImageConfig, ZoneError
from protocol import ImageItem
from tests.media import QUADRANTS, MediaMaker
from zones import ImageRenderer, RenderContext, configure_renderer
from zones._image_decode import decode_fitted
from zones._image_worker import ImageDecoder

ZONE_1080P = (1920, 1080)


@pytest.fixture(autouse=True)
def _default_image_settings() -> Iterator[None]:
    configure_renderer("image", ImageConfig())
    yield
    configure_renderer("image", ImageConfig())


def _renderer(path: Path, zone: str = "wall") -> tuple[ImageRenderer, ImageItem]:
    def asset_path(sha: str) -> Path:
        return path

    item = ImageItem.model_validate(
        {"id": f"pic-{path.stem}", "type": "image", "asset": "f" * 64, "duration_ms": 1000}
    )
    return ImageRenderer(RenderContext(zone_id=zone, asset_path=asset_path)), item


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("unsupported.dds", "Unimplemented pixel format"),  # NotImplementedError in Pillow
        ("truncated.jpg", "image file is truncated"),
        ("jpeg_garbage.jpg", ""),
        ("mp4_named.png", "cannot identify image file"),
        ("zero_bytes.png", "cannot identify image file"),
        ("still.heic", "cannot identify image file"),
        ("text_named.mp4", "cannot identify image file"),
    ],
)
async def test_every_decoder_error_is_a_zone_error_naming_zone_and_item(
    media: MediaMaker, name: str, reason: str
) -> None:
    renderer, item = _renderer(media(name))
    with pytest.raises(ZoneError) as caught:
        await renderer.prepare(item, (320, 180))
    assert caught.value.zone == "wall" and caught.value.item == item.id
    assert "cannot show image" in str(caught.value)
    assert reason in str(caught.value)


@pytest.mark.parametrize("name", ["one_pixel.png", "seven_by_three.png", "still.avif"])
async def test_tiny_odd_and_avif_pictures_fill_their_box(media: MediaMaker, name: str) -> None:
    renderer, item = _renderer(media(name))
    await renderer.prepare(item, (320, 180))
    picture = renderer._picture
    assert picture is not None
    w, h = picture.surface.get_size()
    assert w == 320 or h == 180  # contain: one side fills the zone
    assert picture.surface.get_at((w // 2, h // 2))[:3] != (0, 0, 0)


def test_a_huge_palette_png_is_resampled_in_strips_to_the_zone(media: MediaMaker) -> None:
    path = media("huge_palette.png")
    decoded = decode_fitted(str(path), ZONE_1080P, "contain", 90_000_000)
    assert decoded.source_size == (9400, 9400)
    assert decoded.size == (1080, 1080) and decoded.offset == (420, 0)
    assert len(decoded.data) == 1080 * 1080 * 3
    # 16 vertical stripes of the palette, and the ellipse in the middle, survive the strips:
    # the stripes' colours step by 16 in red, and no strip seam shows (each row alike).
    row = 10 * 1080 * 3
    reds = {decoded.data[row + (i * 1080 // 16 + 30) * 3] for i in range(16)}
    assert len(reds) == 16
    column = [decoded.data[(y * 1080 + 30) * 3] for y in range(0, 1080, 7)]
    assert max(column) - min(column) <= 2


def test_a_jpeg_is_decoded_at_a_reduced_scale_and_turned_upright(media: MediaMaker) -> None:
    decoded = decode_fitted(str(media("big.jpg")), (300, 200), "stretch", 90_000_000)
    assert decoded.source_size == (6000, 4000) and decoded.size == (300, 200)
    corners = [(75, 50), (225, 50), (225, 150), (75, 150)]
    colours = [tuple(decoded.data[(y * 300 + x) * 3 : (y * 300 + x) * 3 + 3]) for x, y in corners]
    for got, want in zip(colours, QUADRANTS, strict=True):
        assert all(abs(a - b) < 40 for a, b in zip(got, want, strict=True)), (got, want)


async def test_a_picture_above_the_megapixel_ceiling_is_refused_clearly(media: MediaMaker) -> None:
    configure_renderer("image", ImageConfig(max_megapixels=10))
    renderer, item = _renderer(media("big.jpg"))  # 6000 x 4000 = 24 megapixels
    with pytest.raises(ZoneError) as caught:
        await renderer.prepare(item, (320, 180))
    message = str(caught.value)
    assert "6000x4000 is 24.0 megapixels, above the limit of 10" in message
    assert "image.max_megapixels" in message and caught.value.item == item.id


async def test_a_decoder_that_dies_is_an_error_and_the_next_picture_decodes(
    media: MediaMaker,
) -> None:
    decoder = ImageDecoder(timeout_s=60)
    try:
        decoder.decode(media("one_pixel.png"), (10, 10), "contain", 90_000_000)  # started
        process = decoder._process
        assert process is not None and process.pid is not None
        pid = process.pid

        def crash_soon() -> None:
            time.sleep(0.3)  # inside the 9,400 x 9,400 decode
            os.kill(pid, signal.SIGSEGV)

        threading.Thread(target=crash_soon).start()
        with pytest.raises(ZoneError, match=r"crashed on this file \(killed by SIGSEGV\)"):
            await asyncio.to_thread(
                decoder.decode, media("huge_palette.png"), ZONE_1080P, "contain", 90_000_000
            )
        again = decoder.decode(media("seven_by_three.png"), (70, 30), "stretch", 90_000_000)
        assert again.size == (70, 30) and decoder.started == 2
    finally:
        decoder.close()


def test_a_decode_that_takes_too_long_is_abandoned(media: MediaMaker) -> None:
    decoder = ImageDecoder(timeout_s=60)
    try:
        decoder.decode(media("one_pixel.png"), (10, 10), "contain", 90_000_000)  # warm
        decoder.timeout_s = 0.2
        with pytest.raises(ZoneError, match=r"longer than 0.2 s"):
            decoder.decode(media("huge_palette.png"), ZONE_1080P, "contain", 90_000_000)
        decoder.timeout_s = 60
        assert decoder.decode(media("one_pixel.png"), (5, 5), "cover", 90_000_000).size == (5, 5)
    finally:
        decoder.close()

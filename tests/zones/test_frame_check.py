"""The black and frozen frame checks every tool shares (zones._frame_check)."""

from __future__ import annotations

import pygame
import pytest

from zones import (
    BLACK_AREA,
    FreezeWatch,
    black_share,
    is_black,
    near_black_mask,
    picture_digest,
)

SIZE = (200, 100)
PICTURE = (40, 110, 200)


def frame(colour: tuple[int, int, int] = PICTURE) -> pygame.Surface:
    surface = pygame.Surface(SIZE)
    surface.fill(colour)
    return surface


def test_a_picture_is_not_black() -> None:
    assert black_share(frame()) == 0.0
    assert not is_black(frame())


def test_a_black_frame_is_black() -> None:
    assert black_share(frame((0, 0, 0))) == 1.0
    assert is_black(frame((0, 0, 0)))


@pytest.mark.parametrize(
    ("colour", "black"),
    [
        ((15, 15, 15), True),  # luma 15: below video black (16)
        ((12, 16, 18), True),  # luma 15.03, rounds to 15
        ((0, 0, 40), True),  # a very dark blue: luma 4.6
        ((16, 16, 16), False),  # luma 16 exactly: video black level, not below it
        ((15, 16, 17), False),  # luma 15.9, rounds to 16
    ],
)
def test_dark_grey_counts_as_black_below_luma_16(colour: tuple[int, int, int], black: bool) -> None:
    assert is_black(frame(colour)) is black


def test_a_half_black_frame_is_black_and_the_threshold_is_two_percent() -> None:
    half = frame()
    half.fill((0, 0, 0), pygame.Rect(0, 0, 100, 100))
    assert black_share(half) == 0.5 and is_black(half)
    stripe = frame()
    stripe.fill((0, 0, 0), pygame.Rect(0, 0, 4, 100))  # 400 of 20 000 pixels: 2 %
    assert black_share(stripe) == BLACK_AREA and is_black(stripe)
    thinner = frame()
    thinner.fill((0, 0, 0), pygame.Rect(0, 0, 3, 100))  # 1.5 %
    assert not is_black(thinner)


def test_a_zone_is_judged_on_its_own_box() -> None:
    canvas = frame()
    canvas.fill((0, 0, 0), pygame.Rect(150, 0, 50, 100))  # the right zone is black
    assert is_black(canvas, (150, 0, 50, 100))
    assert not is_black(canvas, (0, 0, 150, 100))


def test_a_legitimately_dark_item_is_not_black() -> None:
    # A night photo: mostly near black with a bright moon; its reference render is the same.
    night = frame((5, 5, 8))
    pygame.draw.circle(night, (240, 240, 220), (150, 40), 20)
    reference = near_black_mask(night)
    assert black_share(night) > 0.9, "without a reference it would count"
    assert black_share(night, reference=reference) == 0.0
    # The same item with its moon gone is black where the reference is bright.
    gone = frame((5, 5, 8))
    assert is_black(gone, reference=reference)


def test_letterbox_bars_of_the_reference_are_not_black() -> None:
    contain = frame((0, 0, 0))
    contain.fill(PICTURE, pygame.Rect(50, 0, 100, 100))  # a square picture, black bars
    reference = near_black_mask(contain)
    assert not is_black(contain, reference=reference)
    blank = frame((0, 0, 0))  # the picture did not come: the middle is black too
    assert is_black(blank, reference=reference)


def test_the_reference_must_have_the_zone_size() -> None:
    with pytest.raises(ValueError, match="reference"):
        black_share(frame(), (0, 0, 10, 10), near_black_mask(frame()))


MS = 1_000_000
SOURCE, DISPLAY = 40 * MS, 16_666_667  # a 25 fps clip on a 60 Hz screen


def test_a_video_changing_every_source_frame_is_not_frozen() -> None:
    watch = FreezeWatch(SOURCE, DISPLAY)
    watch.start(0, b"0")
    # 25 fps on 60 Hz: a new picture every 2 or 3 display frames (33 or 50 ms).
    t = 0
    for index, frames in enumerate([3, 2, 3, 2, 3, 2], start=1):
        t += frames * DISPLAY
        assert not watch.picture(t, str(index).encode())
    assert not watch.stop(t + 3 * DISPLAY)
    assert watch.frozen == 0 and watch.longest_hold_ns == 3 * DISPLAY


def test_a_frozen_picture_is_caught() -> None:
    watch = FreezeWatch(SOURCE, DISPLAY)
    assert watch.limit_ns == SOURCE + DISPLAY
    watch.start(0, b"a")
    assert not watch.picture(3 * DISPLAY, b"b")
    assert not watch.picture(5 * DISPLAY, b"b"), "the same picture again: still held"
    assert watch.picture(7 * DISPLAY, b"c"), "b held 4 display frames (66.7 ms > 56.7 ms)"
    assert watch.frozen == 1
    assert watch.stop(7 * DISPLAY + SOURCE + DISPLAY + 1), "held to the end: frozen too"
    assert watch.frozen == 2


def test_digest_tells_pictures_apart() -> None:
    one, two = frame(), frame()
    assert picture_digest(one) == picture_digest(two)
    two.set_at((199, 99), (41, 110, 200))
    assert picture_digest(one) != picture_digest(two)
    assert picture_digest(one, (0, 0, 10, 10)) == picture_digest(two, (0, 0, 10, 10))


def test_sampled_shares_estimate_the_full_one() -> None:
    half = pygame.Surface((400, 200))
    half.fill(PICTURE)
    half.fill((0, 0, 0), pygame.Rect(0, 0, 200, 200))
    assert black_share(half, sample=4) == 0.5
    reference = near_black_mask(half, sample=4)
    assert reference.size == (100, 50)
    assert black_share(half, reference=reference, sample=4) == 0.0

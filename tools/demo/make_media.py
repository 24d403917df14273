"""Regenerate the demo's media files (slides and the short video clip) in this folder.

The outputs are committed; this script exists so they can be rebuilt or restyled::

    .venv/bin/python tools/demo/make_media.py

Slides are 1920x1080 JPEGs drawn with Pillow and the bundled DejaVu font; the clip is a
4-second 640x360 H.264 file made by ffmpeg's ``gradients`` and ``drawtext`` filters.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
FONTS = HERE.parent.parent / "zones" / "fonts"
SIZE = (1920, 1080)


@dataclass(frozen=True)
class Slide:
    name: str
    top: tuple[int, int, int]
    bottom: tuple[int, int, int]
    accent: tuple[int, int, int]
    kicker: str
    title: str
    body: str


SLIDES = [
    Slide(
        "welcome.jpg",
        (10, 32, 64),
        (8, 110, 120),
        (255, 196, 61),
        "SIGNAGE PLAYER",
        "Screens that just keep playing",
        "This is the real player, scheduled by the bundled server.\n"
        "Everything you see was paired, synced and cached like a kiosk.",
    ),
    Slide(
        "on-time.jpg",
        (40, 16, 70),
        (120, 40, 110),
        (120, 230, 200),
        "FRAME-ACCURATE",
        "Every switch lands on its frame",
        "Items run on absolute deadlines of a monotonic media clock.\n"
        "No drift after a day, a week or a month.",
    ),
    Slide(
        "offline.jpg",
        (12, 48, 30),
        (30, 120, 70),
        (250, 240, 160),
        "OFFLINE FIRST",
        "Network gone? The show goes on",
        "Assets are hash-verified on disk before they play,\n"
        "and the schedule is evaluated on the player itself.",
    ),
    Slide(
        "pair.jpg",
        (60, 30, 10),
        (170, 80, 30),
        (255, 255, 255),
        "PAIR A SCREEN",
        "Six digits and it is yours",
        "Run `signage play` on a Pi: it shows a code.\n"
        "Type it into the server's admin page and content follows.",
    ),
    Slide(
        "evening.jpg",
        (20, 12, 40),
        (200, 90, 60),
        (255, 214, 150),
        "EVENING PROGRAMME",
        "Good evening",
        "Dayparts switch on the player at the scheduled minute,\nonline or not.",
    ),
    Slide(
        "tonight.jpg",
        (5, 10, 30),
        (40, 60, 130),
        (180, 200, 255),
        "TONIGHT",
        "Quiet hours, bright screens",
        "Static slides cost almost no CPU:\nnothing is redrawn unless something changes.",
    ),
]


# The scenario "same_name_new_bytes" replaces welcome.jpg by this file of the same name.
REPLACEMENT = Slide(
    "scenarios/media/welcome.jpg",
    (90, 10, 20),
    (200, 40, 60),
    (255, 230, 120),
    "SAME NAME, NEW BYTES",
    "Welcome (version 2)",
    "Replaced under the same file name: the player\nmust show these bytes, not the cached ones.",
)


def font(size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(
        str(FONTS / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size
    )


def gradient(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    column = Image.new("RGB", (1, SIZE[1]))
    for y in range(SIZE[1]):
        f = y / (SIZE[1] - 1)
        column.putpixel(
            (0, y), tuple(round(a + (b - a) * f) for a, b in zip(top, bottom, strict=True))
        )
    return column.resize(SIZE)


def draw_slide(slide: Slide) -> Image.Image:
    image = gradient(slide.top, slide.bottom)
    # Soft shapes give depth without noise (noise would bloat the JPEG).
    glow = Image.new("L", SIZE, 0)
    ImageDraw.Draw(glow).ellipse((1150, -250, 2250, 850), fill=90)
    glow = glow.filter(ImageFilter.GaussianBlur(120))
    image = Image.composite(Image.new("RGB", SIZE, slide.accent), image, glow)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((140, 300, 152, 780), radius=6, fill=slide.accent)
    draw.text((200, 300), slide.kicker, font=font(44, bold=True), fill=slide.accent)
    draw.text((200, 380), slide.title, font=font(96, bold=True), fill=(255, 255, 255))
    draw.multiline_text((200, 560), slide.body, font=font(46), fill=(230, 236, 245), spacing=22)
    return image


def make_slides() -> None:
    for slide in [*SLIDES, REPLACEMENT]:
        target = HERE / slide.name
        draw_slide(slide).save(target, "JPEG", quality=72, optimize=True, progressive=True)
        print(f"{slide.name}: {target.stat().st_size // 1024} KiB")


def make_clip() -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is needed for the clip: apt-get install ffmpeg")
    target = HERE / "clip.mp4"
    text = (
        f"drawtext=fontfile={FONTS / 'DejaVuSans-Bold.ttf'}:text='video zone · mpv':"
        "fontsize=44:fontcolor=white:x=(w-tw)/2:y=(h-th)/2-20,"
        f"drawtext=fontfile={FONTS / 'DejaVuSans.ttf'}:text='%{{pts\\:hms}}':"
        "fontsize=28:fontcolor=white@0.8:x=(w-tw)/2:y=(h/2)+40"
    )
    subprocess.run(
        [ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
         "gradients=s=640x360:r=25:c0=0x0a2040:c1=0x0a8078:c2=0x5a2a78:n=3:speed=0.02:d=4",
         "-vf", text, "-c:v", "libx264", "-preset", "veryslow", "-crf", "30",
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-an", str(target)],
        check=True,
    )  # fmt: skip
    print(f"{target.name}: {target.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    make_slides()
    make_clip()

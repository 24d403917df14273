"""Media files made at test time (ffmpeg, Pillow): the odd, the huge and the broken.

``MediaMaker`` makes each file once per test session, on first use, into a temporary folder
(``tests/conftest.py`` has the ``media`` fixture). Every case of the hostile-media suite is a
name here, so the player, zone and server tests meet the same files. Generating costs a few
seconds in all (the 9,400 x 9,400 PNG most of them), far less than committing megabytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

DATA = Path(__file__).parent / "data"
CLIPS = DATA / "video"
FFMPEG = shutil.which("ffmpeg") or "ffmpeg"

# Quadrant colours of the orientation test picture (clockwise from the top left).
QUADRANTS = ((255, 0, 0), (0, 255, 0), (255, 255, 255), (0, 0, 255))


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *args], check=True, timeout=120)


def _testsrc(size: str, rate: int, seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def padded_mp4(padding: int) -> bytes:
    """A real 0.4 s MP4 followed by a ``free`` box of ``padding`` random bytes: a valid file of
    any size from ~5 KB (players and probes skip ``free`` boxes)."""
    clip = (CLIPS / "h264_160x90_0.4s.mp4").read_bytes()
    return clip + (padding + 8).to_bytes(4, "big") + b"free" + os.urandom(padding)


def quadrant_picture(size: tuple[int, int]) -> Image.Image:
    """Red, green / blue, white quadrants: any rotation or flip changes which corner is which."""
    picture = Image.new("RGB", size)
    draw = ImageDraw.Draw(picture)
    w, h = size
    boxes = [(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (w // 2, h // 2, w, h)]
    boxes.append((0, h // 2, w // 2, h))
    for box, colour in zip(boxes, QUADRANTS, strict=True):
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
    return picture


class MediaMaker:
    """Makes named test media on demand, once each (thread-safe: tests may run concurrently)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._makers: dict[str, Callable[[Path], object]] = {
            # video
            "rotated_90.mp4": lambda p: self._rotated(p, 90),
            "rotated_180.mp4": lambda p: self._rotated(p, 180),
            "rotated_270.mp4": lambda p: self._rotated(p, 270),
            "phone_portrait.mp4": self._phone_portrait,
            "hevc_10bit.mkv": lambda p: self._encode(
                p, "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error"
            ),
            "vp9.webm": lambda p: self._encode(p, "libvpx-vp9", "-pix_fmt", "yuv420p"),
            "h264.mov": lambda p: self._encode(p, "libx264", "-pix_fmt", "yuv420p", "-f", "mov"),
            "h264.mkv": lambda p: self._encode(p, "libx264", "-pix_fmt", "yuv420p"),
            "av1.mp4": lambda p: self._encode(p, "libaom-av1", "-cpu-used", "8"),
            "mpeg2.mpg": lambda p: self._encode(p, "mpeg2video", "-pix_fmt", "yuv420p"),
            "mjpeg.avi": lambda p: self._encode(p, "mjpeg", "-pix_fmt", "yuvj420p"),
            "odd_7x3.webm": self._odd_size,
            "vfr.mp4": self._vfr,
            "tenth_of_a_second.mp4": lambda p: self._encode(p, "libx264", seconds=0.1),
            "4k.mp4": lambda p: self._encode(
                p, "libx264", "-preset", "ultrafast", "-crf", "40", size="3840x2160", seconds=1
            ),
            "truncated.mp4": self._truncated,
            "truncated_data.mp4": self._truncated_data,
            "no_moov.mp4": self._no_moov,
            "zero_bytes.mp4": lambda p: p.write_bytes(b""),
            "audio_only.m4a": lambda p: shutil.copyfile(CLIPS / "aac_1s.m4a", p),
            "audio_only.webm": lambda p: _ffmpeg(
                "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "libopus", str(p)
            ),
            "png_named.mp4": lambda p: quadrant_picture((64, 36)).save(p, "PNG"),
            "text_named.mp4": lambda p: p.write_text("not a video at all\n" * 40),
            "ftyp_garbage.mp4": lambda p: p.write_bytes(
                b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 8
            ),
            # images
            "huge_palette.png": self._huge_palette,
            "one_pixel.png": lambda p: Image.new("RGB", (1, 1), (200, 30, 30)).save(p),
            "seven_by_three.png": lambda p: quadrant_picture((7, 3)).save(p),
            "quadrants.jpg": lambda p: quadrant_picture((1600, 900)).save(p, quality=90),
            "quadrants.webp": lambda p: quadrant_picture((160, 90)).save(p, "WEBP"),
            "quadrants.bmp": lambda p: quadrant_picture((160, 90)).save(p, "BMP"),
            "rotated_exif.jpg": self._exif_rotated,
            "big.jpg": lambda p: quadrant_picture((6000, 4000)).save(p, quality=80),
            "still.avif": lambda p: quadrant_picture((64, 36)).save(p, "AVIF"),
            "still.heic": lambda p: shutil.copyfile(DATA / "still.heic", p),
            "animated.gif": self._animated_gif,
            "unsupported.dds": self._unsupported_dds,
            "truncated.jpg": self._truncated_jpeg,
            "jpeg_garbage.jpg": lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + bytes(4000)),
            "mp4_named.png": lambda p: shutil.copyfile(CLIPS / "h264_160x90_0.4s.mp4", p),
            "zero_bytes.png": lambda p: p.write_bytes(b""),
        }

    @property
    def names(self) -> list[str]:
        return sorted(self._makers)

    def __call__(self, name: str) -> Path:
        path = self.folder / name
        with self._lock:
            if not path.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f".{name}.partial{path.suffix}")
                self._makers[name](partial)
                partial.replace(path)
        return path

    # makers ---------------------------------------------------------------------------------
    @staticmethod
    def _encode(
        path: Path, codec: str, *options: str, size: str = "320x180", seconds: float = 0.5
    ) -> None:
        _ffmpeg(*_testsrc(size, 25, seconds), "-c:v", codec, *options, str(path))

    def _rotated(self, path: Path, degrees: int) -> None:
        """A quadrant picture as a clip whose container says "rotate by ``degrees``"."""
        still, upright = path.with_suffix(".png"), path.with_name("upright-" + path.name)
        quadrant_picture((320, 180)).save(still)
        _ffmpeg(
            "-loop", "1", "-i", str(still), "-t", "0.6", "-r", "25",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", str(upright),
        )  # fmt: skip
        # The tag becomes a display matrix when the stream is copied (not when encoding).
        _ffmpeg("-i", str(upright), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(path))
        still.unlink()
        upright.unlink()

    @staticmethod
    def _phone_portrait(path: Path) -> None:
        """What a phone records upright: 1280x720 frames, "rotate 90" in the container."""
        _ffmpeg(
            "-i", str(CLIPS / "h264_1280x720_1s.mp4"), "-c", "copy",
            "-metadata:s:v:0", "rotate=90", str(path),
        )  # fmt: skip

    @staticmethod
    def _odd_size(path: Path) -> None:
        """7x3 pixels, in 4:4:4 (4:2:0 would round the size down to even)."""
        _ffmpeg(
            "-f", "lavfi", "-i", "testsrc=size=7x3:rate=25:duration=0.5",
            "-c:v", "libvpx-vp9", "-pix_fmt", "yuv444p", str(path),
        )  # fmt: skip

    @staticmethod
    def _vfr(path: Path) -> None:
        """Variable frame rate: frames 40 ms apart, then 120 ms, then 10 ms."""
        _ffmpeg(
            *_testsrc("320x180", 100, 1),
            "-vf", "select='lt(t,0.3)*not(mod(n,4))+between(t,0.3,0.6)*not(mod(n,12))+gt(t,0.6)'",
            "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
        )  # fmt: skip

    @staticmethod
    def _truncated(path: Path) -> None:
        """The first third of a clip whose index (moov) sits at its end."""
        full = path.with_name("full-" + path.name)
        _ffmpeg(*_testsrc("320x180", 25, 2), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(full))
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        full.unlink()

    @staticmethod
    def _truncated_data(path: Path) -> None:
        """A 4 s clip with its index first (faststart), cut at 60 %: the header still says
        4 s, the pictures stop at about 2.4 s (an interrupted copy)."""
        full = path.with_name("full-" + path.name)
        _ffmpeg(
            *_testsrc("320x180", 25, 4), "-c:v", "libx264", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(full),
        )  # fmt: skip
        data = full.read_bytes()
        path.write_bytes(data[: len(data) * 6 // 10])
        full.unlink()

    @staticmethod
    def _no_moov(path: Path) -> None:
        """An MP4 whose ``moov`` box (its index) is gone: a header, media data, no index."""
        data = (CLIPS / "h264_320x180_2s.mp4").read_bytes()
        path.write_bytes(data.replace(b"moov", b"junk", 1))

    @staticmethod
    def _huge_palette(path: Path) -> None:
        """9,400 x 9,400 in 16 colours (~250 KB on disk, 88 megapixels): just under Pillow's
        decompression-bomb limit."""
        picture = Image.new("P", (9400, 9400))
        picture.putpalette([c for i in range(16) for c in (i * 16, 255 - i * 16, 128)])
        draw = ImageDraw.Draw(picture)
        for i in range(16):
            draw.rectangle((i * 587, 0, i * 587 + 586, 9399), fill=i)
        draw.ellipse((2000, 2000, 7400, 7400), fill=3)
        picture.save(path, optimize=True)

    @staticmethod
    def _exif_rotated(path: Path) -> None:
        """A 160x90 JPEG whose EXIF says "turn me 90 degrees" (orientation 6): shown 90x160."""
        exif = Image.Exif()
        exif[0x0112] = 6
        quadrant_picture((160, 90)).save(path, exif=exif.tobytes())

    @staticmethod
    def _animated_gif(path: Path) -> None:
        frames = [quadrant_picture((48, 27)).rotate(90 * i) for i in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)

    @staticmethod
    def _unsupported_dds(path: Path) -> None:
        """A DDS whose pixel format Pillow does not implement (it raises NotImplementedError)."""
        quadrant_picture((64, 32)).save(path, "DDS")
        data = bytearray(path.read_bytes())
        data[80:84] = (4).to_bytes(4, "little")  # DDPF_FOURCC...
        data[84:88] = b"ZZZZ"  # ...of a codec nobody knows
        path.write_bytes(bytes(data))

    @staticmethod
    def _truncated_jpeg(path: Path) -> None:
        full = path.with_name("full-" + path.name)
        quadrant_picture((800, 450)).save(full, quality=90)
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        full.unlink()

"""What an uploaded file really is: opened and decoded before it is stored, never trusted.

Magic bytes say what a file claims to be; a kiosk needs what it is. Each completed upload is
probed in a child process, bounded in time (``server.probe_timeout_s``, then killed) and in
memory (an address-space limit), so a hostile file costs the server neither its event loop
nor its memory:

- **Pictures** (PNG, JPEG, GIF, WebP, AVIF, BMP) are opened with Pillow, the decoder the
  players use, and decoded (JPEG at 1/8 scale): format, size, frames, EXIF orientation. A
  picture above ``server.max_image_megapixels`` is refused from its header.
- **Video containers** are probed with ffprobe from Debian's ``ffmpeg`` package. It is built on
  the same FFmpeg libraries as the players' libmpv (Debian's ``libmpv2`` and ``ffmpeg`` share
  ``libavcodec59``), so "decodable here" means "decodable there", the format list is the same,
  and it runs as a separate program (a crash in a demuxer is the child's). PyAV was the other
  candidate: its wheels bundle their own FFmpeg build (different version and decoders than
  libmpv's), and it would decode inside the server process. ffprobe checks: a video stream
  that decodes (its first frames), dimensions (rotation applied), duration and rotation, and
  that the file does not end before its duration says (a truncated upload).

Everything else, and everything that fails, is refused with a problem naming the reason
(``ProbeRejected``): an empty file, HEIC/HEIF stills (neither Pillow nor this FFmpeg decodes
them), audio without video, truncated or corrupt files, unknown types.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

IMAGE_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # a phone's JPEG with extra pictures (opened as JPEG): the first shows
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "BMP": "image/bmp",
}
_OPENERS = [name for name in IMAGE_FORMATS if name != "MPO"]  # Pillow's plugin names
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_STILL_CODECS = {"png", "mjpeg", "bmp", "gif", "webp", "tiff", "jpeg2000"}  # ffprobe's *_pipe
PROBE_CONCURRENCY = 2


class MediaProbe(BaseModel):
    """What a stored file is (kept with it, shown in the admin API and the manifest)."""

    kind: Literal["image", "video"]
    mime: str
    format: str
    codec: str | None = None
    width: int
    height: int  # as shown: EXIF orientation and video rotation applied
    duration_ms: int | None = None  # video only
    frames: int | None = None  # pictures: more than 1 for an animation (its first is shown)
    rotation: int = 0  # video: clockwise degrees the container asks for


class ProbeRejected(Exception):
    """The file cannot be shown; ``status`` 415 (a type the players cannot show) or 422."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ProbeLimits:
    timeout_s: float = 30.0
    memory_bytes: int = 1 << 30
    max_image_pixels: int = 90_000_000


# Runs a program with an address-space and CPU-time limit (inherited across exec).
_LIMITED = (
    "import os, resource, sys\n"
    "mem, cpu = int(sys.argv[1]), int(sys.argv[2])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (mem, mem))\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)

# The picture probe, in a fresh interpreter under those limits: one JSON line out.
_PICTURE = (
    "import json, sys\n"
    "from PIL import Image\n"
    "Image.MAX_IMAGE_PIXELS = None\n"
    "path, max_pixels, formats = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(',')\n"
    "try:\n"
    "    with Image.open(path, formats=formats) as im:\n"
    "        w, h = im.size\n"
    "        out = {'format': im.format, 'width': w, 'height': h,\n"
    "               'frames': getattr(im, 'n_frames', 1),\n"
    "               'orientation': im.getexif().get(0x0112, 1)}\n"
    "        if w * h > max_pixels:\n"
    "            out['too_large'] = True\n"
    "        else:\n"
    "            im.draft('RGB', (max(1, w // 8), max(1, h // 8)))\n"
    "            im.load()\n"
    "except Exception as exc:\n"
    "    out = {'error': type(exc).__name__, 'message': str(exc)[:300]}\n"
    "print(json.dumps(out))\n"
)


class Prober:
    """Probes files with a bounded number of children at once."""

    def __init__(self, limits: ProbeLimits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(PROBE_CONCURRENCY)

    @staticmethod
    def ffprobe_available() -> bool:
        return shutil.which("ffprobe") is not None

    async def probe(self, path: Path, head: bytes, size: int) -> MediaProbe:
        """What ``path`` is; ``ProbeRejected`` with the reason when it cannot be shown."""
        if size == 0:
            raise ProbeRejected(422, "empty_file", "the file is empty (0 bytes)")
        kind = _claimed_kind(head)
        if kind == "heif":
            raise ProbeRejected(
                415,
                "unsupported_media_type",
                "HEIC/HEIF pictures cannot be shown by the players; "
                "convert them to JPEG, PNG, WebP or AVIF",
            )
        async with self._slots:
            if kind == "image":
                return await self._picture(path)
            if kind == "video":
                return await self._video(path, webm=b"webm" in head[:64])
        raise ProbeRejected(
            415,
            "unsupported_media_type",
            "not a picture or video the players can show "
            "(PNG, JPEG, WebP, GIF, AVIF, BMP; MP4, MOV, MKV, WebM, AVI, MPEG)",
        )

    # -- children -------------------------------------------------------------------------------
    async def _run(self, *argv: str) -> tuple[int, str, str]:
        """Run ``argv`` under the limits; (exit code, stdout, stderr). Kills it at the timeout."""
        cpu = max(1, int(self.limits.timeout_s))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-c", _LIMITED,
            str(self.limits.memory_bytes), str(cpu), *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.limits.timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ProbeRejected(
                422,
                "probe_timeout",
                f"the file could not be checked within {self.limits.timeout_s:g} s",
            ) from None
        code = process.returncode if process.returncode is not None else -1
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    async def _picture(self, path: Path) -> MediaProbe:
        code, out, _ = await self._run(
            sys.executable, "-I", "-c", _PICTURE,
            str(path), str(self.limits.max_image_pixels), ",".join(_OPENERS),
        )  # fmt: skip
        try:
            result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise ProbeRejected(
                422, "undecodable_media", f"the picture could not be decoded ({_death(code)})"
            ) from None
        if "error" in result:
            reason = str(result.get("message") or result["error"])
            reason = reason.replace(f" '{path}'", "").replace(str(path), "the file")
            raise ProbeRejected(422, "undecodable_media", f"not a decodable picture: {reason}")
        width, height = int(result["width"]), int(result["height"])
        if result.get("too_large"):
            limit = self.limits.max_image_pixels / 1e6
            raise ProbeRejected(
                422,
                "image_too_large",
                f"{width}x{height} is {width * height / 1e6:.1f} megapixels, above the limit "
                f"of {limit:g} (server.max_image_megapixels)",
            )
        if result.get("orientation") in (5, 6, 7, 8):
            width, height = height, width
        image_format = str(result["format"])
        return MediaProbe(
            kind="image",
            mime=IMAGE_FORMATS[image_format],
            format=image_format,
            width=width,
            height=height,
            frames=int(result.get("frames") or 1),
        )

    async def _video(self, path: Path, *, webm: bool) -> MediaProbe:
        if not self.ffprobe_available():
            raise ProbeRejected(
                503, "probe_unavailable", "ffprobe is not installed (Debian package ffmpeg)"
            )
        code, out, err = await self._run(
            "ffprobe", "-v", "error", "-threads", "1", "-of", "json",
            "-show_format", "-show_streams", "-count_frames", "-read_intervals", "%+#2",
            str(path),
        )  # fmt: skip
        info = _json(out)
        streams = info.get("streams") or []
        if code != 0 or not streams:
            raise ProbeRejected(
                422, "undecodable_media", f"not a decodable video file: {_reason(err, code, path)}"
            )
        videos = [
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ]
        if not videos:
            audio = any(s.get("codec_type") == "audio" for s in streams)
            raise ProbeRejected(
                415,
                "no_video_stream",
                "audio only: the file has no video stream"
                if audio
                else "the file has no video stream",
            )
        stream = videos[0]
        fmt = info.get("format") or {}
        container = str(fmt.get("format_name", ""))
        if container.endswith("_pipe") or (
            stream.get("codec_name") in _STILL_CODECS
            and ("image2" in container or container.endswith("_pipe"))
        ):
            raise ProbeRejected(422, "undecodable_media", "a broken picture, not a video")
        width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
        if int(stream.get("nb_read_frames") or 0) < 1 or width < 1 or height < 1:
            raise ProbeRejected(
                422,
                "undecodable_media",
                f"its video stream ({stream.get('codec_name', 'unknown codec')}) does not "
                f"decode: {_reason(err, code, path)}",
            )
        rotation = _rotation(stream)
        if rotation in (90, 270):
            width, height = height, width
        duration = _seconds(fmt.get("duration")) or _seconds(stream.get("duration"))
        if duration is not None:
            await self._check_complete(path, int(stream.get("index", 0)), duration)
        return MediaProbe(
            kind="video",
            mime=_video_mime(container, fmt, webm=webm),
            format=container,
            codec=stream.get("codec_name"),
            width=width,
            height=height,
            duration_ms=None if duration is None else round(duration * 1000),
            rotation=rotation,
        )

    async def _check_complete(self, path: Path, index: int, duration: float) -> None:
        """A truncated upload keeps its header (which states the duration) but loses the end:
        read the packets of the last two seconds and see where they stop."""
        start = max(0.0, duration - 2.0)
        _, out, err = await self._run(
            "ffprobe", "-v", "error", "-select_streams", str(index),
            "-read_intervals", f"{start:.3f}%", "-show_entries", "packet=pts_time,dts_time",
            "-of", "json", str(path),
        )  # fmt: skip
        times = [
            t
            for packet in _json(out).get("packets") or []
            for t in (_seconds(packet.get("pts_time")), _seconds(packet.get("dts_time")))
            if t is not None
        ]
        last = max(times, default=None)
        tolerance = max(1.0, duration * 0.1)
        if "partial file" in err or last is None or last < duration - tolerance:
            seen = "nothing" if last is None else f"{last:.1f} s"
            raise ProbeRejected(
                422,
                "truncated_media",
                f"the file ends early: its header says {duration:.1f} s, its data stops at "
                f"{seen} (an incomplete upload or copy?)",
            )


def _claimed_kind(head: bytes) -> Literal["image", "video", "heif", "unknown"]:
    """What the first bytes claim; decoding then decides."""
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(len(head), 64), 4)}
        if head[8:12] in _AVIF_BRANDS:
            return "image"
        if head[8:12] in _HEIF_BRANDS or (brands & _HEIF_BRANDS and not brands & _AVIF_BRANDS):
            return "heif"
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # Matroska / WebM
        return "video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "video"  # MPEG program or elementary stream
    return "unknown"


def _video_mime(container: str, fmt: dict[str, Any], *, webm: bool) -> str:
    if container.startswith("mov,mp4"):
        brand = str((fmt.get("tags") or {}).get("major_brand", "")).strip()
        return "video/quicktime" if brand == "qt" else "video/mp4"
    if container == "matroska,webm":
        return "video/webm" if webm else "video/x-matroska"
    return {
        "avi": "video/x-msvideo",
        "mpeg": "video/mpeg",
        "mpegts": "video/mp2t",
    }.get(container, "video/x-unknown")


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise degrees, as mpv shows it (FFmpeg's display matrix turns counterclockwise)."""
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and isinstance(side.get("rotation"), int | float):
            return int(round(-side["rotation"] / 90) * 90) % 360
    return 0


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason(stderr: str, code: int, path: Path) -> str:
    """ffprobe's error lines, without "[demuxer @ 0x...]" prefixes or our file name."""
    lines: list[str] = []
    for line in stderr.splitlines():
        text = line.split("] ", 1)[-1].removeprefix(f"{path}: ").strip()
        if text and text not in lines:
            lines.append(text)
    return "; ".join(lines)[:300] if lines else _death(code)


def _death(code: int) -> str:
    if code < 0:
        return f"the checker was killed by signal {-code} (out of memory or time?)"
    return f"exit status {code}"

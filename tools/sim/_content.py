"""Content sets for the simulator: a folder with ``content.toml`` and the media files it names.

``content.toml`` has the manifest's shape (DESIGN section 11) without ``version``, ``config``,
``assets`` and ``interrupts`` (scenario events send those): image and video items name a
``file`` (relative to the folder) instead of an ``asset`` hash; ``power`` is the devices'
power schedule. Loading hashes the files and validates the result as a real ``Manifest``, so a
bad content set fails here, with every problem listed, before anything reaches a server.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core import ConfigError
from protocol import Asset, ImageItem, Manifest, VideoItem

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"
CONTENT_FILE = "content.toml"
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
}
_TOP_KEYS = {"timezone", "default_layout", "playlists", "layouts", "schedule", "power"}


@dataclass(frozen=True)
class MediaFile:
    path: Path
    sha256: str
    size: int
    mime: str


@dataclass(frozen=True)
class Content:
    """A validated content set: the manifest (version 0) and the files behind its assets."""

    manifest: Manifest
    media: dict[str, MediaFile] = field(default_factory=dict)  # by sha256
    source: str = ""

    def item_ids(self) -> set[str]:
        return {item.id for p in self.manifest.playlists for item in p.items}

    def file_of(self, sha256: str) -> Path:
        return self.media[sha256].path


def resolve_content_dir(spec: str | Path, *, base: Path | None = None) -> Path:
    """``"demo"`` is the bundled set; anything else is a folder (relative to ``base``)."""
    if str(spec) == "demo":
        return DEMO_DIR
    path = Path(spec)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def hash_media(path: Path) -> MediaFile:
    mime = MEDIA_TYPES.get(path.suffix.lower())
    if mime is None:
        known = ", ".join(sorted(MEDIA_TYPES))
        raise ConfigError([f"{path}: unknown media type (known extensions: {known})"])
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return MediaFile(path=path, sha256=digest.hexdigest(), size=size, mime=mime)


def _with_assets(
    items: Any, where: str, folder: Path, media: dict[str, MediaFile], problems: list[str]
) -> Any:
    """Items with ``file`` replaced by ``asset``; records media and problems on the way."""
    if not isinstance(items, list):
        return items  # the manifest validation reports the wrong type with its path
    converted = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or item.get("type") not in ("image", "video"):
            converted.append(item)
            continue
        label = f"{where}.items[{index}]"
        if "asset" in item:
            problems.append(f"{label}: name a 'file', not an 'asset' hash")
            continue
        name = item.get("file")
        if not isinstance(name, str) or not name:
            problems.append(f"{label}: an {item['type']} item needs 'file'")
            continue
        path = (folder / name).resolve()
        if not path.is_file():
            problems.append(f"{label}: file not found: {path}")
            continue
        try:
            entry = hash_media(path)
        except ConfigError as exc:
            problems.extend(f"{label}: {p}" for p in exc.problems)
            continue
        media[entry.sha256] = entry
        body = {k: v for k, v in item.items() if k != "file"}
        converted.append(body | {"asset": entry.sha256})
    return converted


def convert_playlists(
    playlists: Any, folder: Path, media: dict[str, MediaFile], problems: list[str]
) -> Any:
    """Playlists as the wire wants them: each ``file`` hashed into an ``asset``."""
    if not isinstance(playlists, list):
        return playlists
    out = []
    for index, playlist in enumerate(playlists):
        if isinstance(playlist, Mapping) and "items" in playlist:
            where = f"playlists[{index}]"
            items = _with_assets(playlist["items"], where, folder, media, problems)
            playlist = dict(playlist) | {"items": items}
        out.append(playlist)
    return out


def validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"])
        problems.append(f"{path}: {error['msg']}" if path else str(error["msg"]))
    return problems


def build_manifest(data: Mapping[str, Any], media: Mapping[str, MediaFile]) -> Manifest:
    """Validate content (assets already resolved) as a version-0 manifest."""
    used = {
        item["asset"]
        for p in data.get("playlists") or []
        if isinstance(p, Mapping)
        for item in p.get("items") or []
        if isinstance(item, Mapping) and "asset" in item
    }
    assets = [
        Asset(sha256=m.sha256, size=m.size, mime=m.mime) for m in media.values() if m.sha256 in used
    ]
    body = dict(data) | {"version": 0, "assets": [a.model_dump() for a in assets]}
    return Manifest.model_validate(body)


def load_content(spec: str | Path, *, base: Path | None = None) -> Content:
    """Load and validate a content folder; ConfigError lists every problem found."""
    folder = resolve_content_dir(spec, base=base)
    source = str(folder / CONTENT_FILE)
    try:
        data = tomllib.loads((folder / CONTENT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([f"no {CONTENT_FILE} in {folder}"], source=source) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source=source) from exc
    problems = [f"{key}: unknown key" for key in sorted(set(data) - _TOP_KEYS)]
    media: dict[str, MediaFile] = {}
    data["playlists"] = convert_playlists(data.get("playlists", []), folder, media, problems)
    if problems:
        raise ConfigError(problems, source=source)
    try:
        manifest = build_manifest(data, media)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc), source=source) from exc
    return Content(manifest=manifest, media=media, source=source)


def media_items(manifest: Manifest) -> list[tuple[str, ImageItem | VideoItem]]:
    """(playlist id, item) for every item that plays a file."""
    return [
        (p.id, item)
        for p in manifest.playlists
        for item in p.items
        if isinstance(item, ImageItem | VideoItem)
    ]

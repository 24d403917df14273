"""Hypothesis strategies that build manifests valid by construction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from protocol import DAYS, MAX_DURATION_MS

ids = st.from_regex(r"[a-z][a-z0-9_-]{0,11}", fullmatch=True)
shas = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
colours = st.from_regex(r"#[0-9a-f]{6}", fullmatch=True)
durations = st.integers(1, MAX_DURATION_MS)
times = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
zones_names = ["Europe/Paris", "UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


def transition() -> st.SearchStrategy[dict[str, Any] | None]:
    return st.none() | st.fixed_dictionaries(
        {
            "type": st.sampled_from(["cut", "fade", "crossfade"]),
            "duration_ms": st.integers(0, 10_000),
        }
    )


def item(item_id: str, assets: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    images = [a["sha256"] for a in assets if a["mime"].startswith("image/")]
    videos = [a["sha256"] for a in assets if a["mime"].startswith("video/")]
    options: list[st.SearchStrategy[dict[str, Any]]] = [
        st.fixed_dictionaries(
            {
                "id": st.just(item_id),
                "type": st.just("text"),
                "text": st.text(min_size=1, max_size=40),
            },
            optional={
                "scroll": st.sampled_from(["none", "left", "up"]),
                "speed_px_s": st.floats(1, 5000),
                "color": colours,
                "duration_ms": durations,
            },
        ),
        st.fixed_dictionaries(
            {"id": st.just(item_id), "type": st.just("clock")},
            optional={
                "format": st.sampled_from(["%H:%M", "%H:%M:%S", "%A %d %B"]),
                "timezone": st.sampled_from(zones_names),
                "transition": transition(),
            },
        ),
    ]
    if images:
        options.append(
            st.fixed_dictionaries(
                {
                    "id": st.just(item_id),
                    "type": st.just("image"),
                    "asset": st.sampled_from(images),
                },
                optional={
                    "duration_ms": durations,
                    "fit": st.sampled_from(["contain", "cover", "stretch"]),
                    "transition": transition(),
                },
            )
        )
    if videos:
        options.append(
            st.fixed_dictionaries(
                {
                    "id": st.just(item_id),
                    "type": st.just("video"),
                    "asset": st.sampled_from(videos),
                    "duration_ms": st.none() | durations,
                }
            )
        )
    return st.one_of(options)


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    asset_shas = draw(st.lists(shas, max_size=4, unique=True))
    assets = [
        {
            "sha256": sha,
            "size": draw(st.integers(0, 10**9)),
            "mime": draw(st.sampled_from(["image/png", "image/jpeg", "video/mp4", "video/webm"])),
        }
        for sha in asset_shas
    ]
    playlist_ids = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    playlists = []
    for pid in playlist_ids:
        item_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
        playlists.append({"id": pid, "items": [draw(item(i, assets)) for i in item_ids]})
    layouts = []
    for lid in draw(st.lists(ids, min_size=1, max_size=3, unique=True)):
        width, height = draw(st.integers(16, 3840)), draw(st.integers(16, 2160))
        zones = []
        for zid in draw(st.lists(ids, min_size=1, max_size=3, unique=True)):
            x, y = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
            zones.append(
                {
                    "id": zid,
                    "x": x,
                    "y": y,
                    "w": draw(st.integers(1, width - x)),
                    "h": draw(st.integers(1, height - y)),
                    "z": draw(st.integers(-10, 10)),
                    "playlist": draw(st.sampled_from(playlist_ids)),
                }
            )
        layouts.append(
            {
                "id": lid,
                "width": width,
                "height": height,
                "zones": zones,
                "background": draw(colours),
            }
        )
    layout_ids = [layout["id"] for layout in layouts]
    schedule = []
    for sid in draw(st.lists(ids, max_size=3, unique=True)):
        entry: dict[str, Any] = {
            "id": sid,
            "layout": draw(st.sampled_from(layout_ids)),
            "priority": draw(st.integers(0, 1000)),
        }
        if draw(st.booleans()):
            start = draw(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)))
            entry["start"] = start.isoformat()
            entry["end"] = (start + dt.timedelta(days=draw(st.integers(0, 400)))).isoformat()
        if draw(st.booleans()):
            entry["days"] = draw(
                st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True)
            )
        if draw(st.booleans()):
            start_time, end_time = draw(times), draw(times)
            if start_time != end_time:
                entry["from"], entry["to"] = start_time, end_time
        schedule.append(entry)
    return {
        "version": draw(st.integers(0, 2**31)),
        "timezone": draw(st.sampled_from(zones_names)),
        "assets": assets,
        "playlists": playlists,
        "layouts": layouts,
        "schedule": schedule,
        "default_layout": draw(st.none() | st.sampled_from(layout_ids)),
    }

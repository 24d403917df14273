from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol import (
    ClaimRequest,
    Command,
    Heartbeat,
    HeartbeatResponse,
    ImpressionBatch,
    Manifest,
    PairingCreated,
    PairingRequest,
    Problem,
)
from tests.protocol.strategies import manifests

SHA = "ab" * 32
VIDEO_SHA = "cd" * 32


def example() -> dict[str, Any]:
    return {
        "version": 12,
        "timezone": "Europe/Paris",
        "config": {"heartbeat_interval_s": 30, "poll_interval_s": 60, "sse_ping_s": 15},
        "assets": [
            {"sha256": SHA, "size": 123, "mime": "image/png"},
            {"sha256": VIDEO_SHA, "size": 4567, "mime": "video/mp4"},
        ],
        "playlists": [
            {
                "id": "p1",
                "items": [
                    {
                        "id": "i1",
                        "type": "image",
                        "asset": SHA,
                        "duration_ms": 8000,
                        "fit": "contain",
                        "transition": {"type": "fade", "duration_ms": 500},
                    },
                    {"id": "i2", "type": "video", "asset": VIDEO_SHA, "duration_ms": None},
                    {
                        "id": "i3",
                        "type": "text",
                        "text": "Welcome",
                        "scroll": "left",
                        "speed_px_s": 120,
                    },
                    {"id": "i4", "type": "clock", "format": "%H:%M"},
                ],
            }
        ],
        "layouts": [
            {
                "id": "l1",
                "width": 1920,
                "height": 1080,
                "background": "#000000",
                "zones": [
                    {"id": "main", "x": 0, "y": 0, "w": 1920, "h": 1000, "z": 0, "playlist": "p1"}
                ],
            }
        ],
        "schedule": [
            {
                "id": "s1",
                "layout": "l1",
                "priority": 10,
                "start": "2026-11-20",
                "end": None,
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "from": "08:00",
                "to": "18:00",
            }
        ],
        "default_layout": "l1",
    }


def test_design_example_validates_and_round_trips() -> None:
    manifest = Manifest.model_validate(example())
    again = Manifest.model_validate_json(manifest.model_dump_json(by_alias=True))
    assert again == manifest
    assert manifest.schedule[0].from_ == "08:00"
    assert [a.sha256 for a in manifest.assets_of("l1")] == [SHA, VIDEO_SHA]


def test_night_window_crossing_midnight_is_valid() -> None:
    data = example()
    data["schedule"][0].update({"from": "22:00", "to": "06:00"})
    assert Manifest.model_validate(data).schedule[0].to == "06:00"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


REJECTIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown top-level field": (_set("colour_scheme", "dark"), "Extra inputs are not permitted"),
    "unknown item field": (_set("playlists.0.items.0.autoplay", True), "Extra inputs"),
    "unknown item type": (
        _set("playlists.0.items.2.type", "web"),
        "does not match any of the expected tags",
    ),
    "negative duration": (
        _set("playlists.0.items.0.duration_ms", -1),
        "greater than or equal to 1",
    ),
    "absurd duration": (
        _set("playlists.0.items.0.duration_ms", 9_999_999_999_999),
        "less than or equal",
    ),
    "duration as a string": (_set("playlists.0.items.0.duration_ms", "8000"), "valid integer"),
    "short sha256": (_set("assets.0.sha256", "ab" * 31), "should match pattern"),
    "uppercase sha256": (_set("assets.0.sha256", "AB" * 32), "should match pattern"),
    "bad colour": (_set("layouts.0.background", "black"), "should match pattern"),
    "zone outside its layout": (_set("layouts.0.zones.0.w", 1921), "extends outside layout"),
    "unknown playlist": (_set("layouts.0.zones.0.playlist", "nope"), "unknown playlist 'nope'"),
    "unknown layout in schedule": (_set("schedule.0.layout", "l9"), "unknown layout 'l9'"),
    "unknown default layout": (_set("default_layout", "l9"), "default_layout 'l9' is not a layout"),
    "invalid time of day": (_set("schedule.0.from", "25:00"), "time of day must be HH:MM"),
    "empty window": (_set("schedule.0.to", "08:00"), "'from' equals 'to'"),
    "half a window": (_set("schedule.0.to", None), "needs both 'from' and 'to'"),
    "end before start": (_set("schedule.0.end", "2026-01-01"), "before it starts"),
    "unknown day": (_set("schedule.0.days", ["mon", "funday"]), "Input should be 'mon'"),
    "unknown time zone": (_set("timezone", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
    "asset not listed": (_set("playlists.0.items.0.asset", "ef" * 32), "not in 'assets'"),
    "image item on a video asset": (
        _set("playlists.0.items.0.asset", VIDEO_SHA),
        "its asset is video/mp4",
    ),
    "bad clock format": (_set("playlists.0.items.3.format", "HH:MM"), "strftime directive"),
    "loop without duration": (
        _set("playlists.0.items.1.loop", True),
        "looping video needs duration_ms",
    ),
    "bad id": (_set("playlists.0.id", "has space"), "should match pattern"),
    "sync group with a video of unknown length": (
        _set("sync", {"group": "wall", "epoch": "2026-11-21T00:00:00Z"}),
        "every item needs a known length (duration_ms, or for a video the length its file "
        "was probed to have): the cycle must be known on every screen; without one: p1/i2",
    ),
    "sync epoch without an offset": (
        _set("sync", {"group": "wall", "epoch": "2026-11-21T00:00:00"}),
        "the epoch needs a UTC offset",
    ),
    "crop outside the picture": (
        _set("layouts.0.zones.0.crop", {"x": 0.6, "y": 0, "w": 0.5, "h": 1}),
        "extends outside the picture",
    ),
    "empty crop": (_set("layouts.0.zones.0.crop", {"w": 0, "h": 1}), "a width and a height"),
    "crop as a string": (
        _set("layouts.0.zones.0.crop", {"w": "0.5", "h": 1}),
        "Input should be a valid number",
    ),
    "duplicate item id": (_set("playlists.0.items.1.id", "i1"), "repeats item ids ['i1']"),
}


def test_a_synced_video_may_play_to_its_end_when_its_length_is_known() -> None:
    data = example()
    data["sync"] = {"group": "wall", "epoch": "2026-11-21T00:00:00Z"}
    data["assets"][1]["duration_ms"] = 4000  # probed by the server
    assert Manifest.model_validate(data).playlists[0].items[1].duration_ms is None


def test_fields_added_after_v1_are_sent_only_when_set() -> None:
    """Peers built before a field reject it (strict models): unset, it is left out."""
    plain = Manifest.model_validate(example())
    sent = json.loads(plain.model_dump_json(by_alias=True))
    assert "sync" not in sent and "crop" not in sent["layouts"][0]["zones"][0]
    data = example()
    data["playlists"][0]["items"][1]["duration_ms"] = 4000
    data["sync"] = {"group": "wall", "epoch": "2026-11-21T00:00:00+01:00"}
    data["layouts"][0]["zones"][0]["crop"] = {"x": 0.5, "w": 0.5, "h": 1}
    synced = Manifest.model_validate(data)
    sent = json.loads(synced.model_dump_json(by_alias=True))
    assert sent["sync"] == {"group": "wall", "epoch": "2026-11-21T00:00:00+01:00"}
    assert sent["layouts"][0]["zones"][0]["crop"] == {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0}
    assert Manifest.model_validate(sent) == synced
    metrics = Heartbeat.model_validate(
        {
            "metrics": {
                "cpu_percent": 1.0,
                "memory_percent": 2.0,
                "memory_used_bytes": 3,
                "disk_free_bytes": 4,
                "disk_total_bytes": 5,
                "uptime_s": 6.0,
                "player_version": "1",
                "state": "playing",
            }
        }
    )
    assert "time" not in metrics.model_dump(mode="json")["metrics"]


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rule_breaking_manifest_is_rejected_readably(case: str) -> None:
    mutate, message = REJECTIONS[case]
    data = copy.deepcopy(example())
    mutate(data)
    with pytest.raises(ValidationError) as caught:
        Manifest.model_validate_json(json.dumps(data))
    assert message in str(caught.value)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_any_valid_manifest_survives_a_json_round_trip(data: dict[str, Any]) -> None:
    manifest = Manifest.model_validate_json(json.dumps(data))
    assert Manifest.model_validate_json(manifest.model_dump_json(by_alias=True)) == manifest


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(manifests(), st.sampled_from(sorted(REJECTIONS)), st.data())
def test_any_rule_breaking_mutation_is_rejected(
    data: dict[str, Any], case: str, choice: st.DataObject
) -> None:
    """Break one rule in a generated manifest, at a place the generator actually produced."""
    layout = choice.draw(st.sampled_from(data["layouts"]))
    zone = choice.draw(st.sampled_from(layout["zones"]))
    playlist = choice.draw(st.sampled_from(data["playlists"]))
    item = choice.draw(st.sampled_from(playlist["items"]))
    breakers: dict[str, Callable[[], None]] = {
        "unknown top-level field": lambda: data.update(colour_scheme="dark"),
        "unknown item field": lambda: item.update(autoplay=True),
        "unknown item type": lambda: item.update(type="web"),
        "negative duration": lambda: item.update(duration_ms=-5),
        "absurd duration": lambda: item.update(duration_ms=10**13),
        "duration as a string": lambda: item.update(duration_ms="100"),
        "zone outside its layout": lambda: zone.update(w=layout["width"] - zone["x"] + 1),
        "unknown playlist": lambda: zone.update(playlist="no-such-playlist"),
        "unknown default layout": lambda: data.update(default_layout="no-such-layout"),
        "bad colour": lambda: layout.update(background="#12345g"),
        "unknown time zone": lambda: data.update(timezone="Nowhere/Land"),
        "bad id": lambda: playlist.update(id=" spaced"),
    }
    breakers.get(case, breakers["unknown top-level field"])()
    with pytest.raises(ValidationError):
        Manifest.model_validate_json(json.dumps(data))


def test_wire_bodies_validate_strictly() -> None:
    request = PairingRequest.model_validate(
        {"hardware_id": "b8:27:eb:00:11:22", "name": "Lobby", "resolution": "1920x1080"}
    )
    assert request.name == "Lobby"
    with pytest.raises(ValidationError, match="Extra inputs"):
        PairingRequest.model_validate({"hardware_id": "x", "token": "y"})
    with pytest.raises(ValidationError, match="should match pattern"):
        ClaimRequest.model_validate({"code": "12345", "name": "Lobby"})
    with pytest.raises(ValidationError, match="Input should be 'reload'"):
        Command.model_validate({"id": "c1", "name": "format_disk"})
    with pytest.raises(ValidationError, match="at least 1 item"):
        ImpressionBatch.model_validate({"impressions": []})
    with pytest.raises(ValidationError, match="valid number"):
        Heartbeat.model_validate({"metrics": {"cpu_percent": "lots"}})
    created = PairingCreated.model_validate(
        {
            "pairing_id": "p-1",
            "code": "042133",
            "expires_at": "2026-11-21T10:00:00Z",
            "poll_token": "A" * 43,
            "poll_after_s": 2,
        }
    )
    assert created.code == "042133"
    response = HeartbeatResponse.model_validate(
        {
            "server_time": "2026-11-21T10:00:00Z",
            "manifest_etag": '"abc"',
            "heartbeat_interval_s": 30,
            "commands": [{"id": "c1", "name": "reload"}],
        }
    )
    assert response.commands[0].args == {}
    problem = Problem(title="Not Found", status=404, code="not_found", detail="no such device")
    assert problem.to_json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "code": "not_found",
        "detail": "no such device",
    }

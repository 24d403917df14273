"""Every JSON example in docs/protocol.md validates as the model its fence names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter

import protocol

DOC = Path(__file__).parents[2] / "docs" / "protocol.md"
FENCE = re.compile(r"^```json ([A-Za-z]+)\n(.*?)^```", re.S | re.M)


def examples() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))]


def test_the_doc_has_an_example_for_each_wire_model() -> None:
    named = {name for name, _ in examples()}
    expected = {
        "Manifest",
        "PairingRequest",
        "PairingCreated",
        "PairingStatus",
        "ClaimRequest",
        "ClaimResponse",
        "Heartbeat",
        "HeartbeatResponse",
        "ManifestEvent",
        "Command",
        "CommandResult",
        "ImpressionBatch",
        "ImpressionAck",
        "TokenRotated",
        "Problem",
        "ManifestConfig",
        "ImageItem",
        "VideoItem",
        "TextItem",
        "ClockItem",
        "ScheduleEntry",
        "SyncGroup",
        "Crop",
        "TimeResponse",
        "TimeStatus",
        "Window",
        "Share",
        "Interrupt",
        "PowerSchedule",
        "PowerMetrics",
    }
    assert expected <= named


@pytest.mark.parametrize(
    ("model", "body"), examples(), ids=[f"{n}-{i}" for i, (n, _) in enumerate(examples())]
)
def test_example_validates(model: str, body: str) -> None:
    adapter: TypeAdapter[object] = TypeAdapter(getattr(protocol, model))
    adapter.validate_json(body)

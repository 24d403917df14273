"""schemathesis against /openapi.json: no 5xx, and every response matches the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from server import RunningServer, run_in_thread
from tests.server.conftest import make_settings

# Streams never end on their own; they have their own tests (test_events.py).
STREAMING = {"/api/v1/device/events", "/api/v1/admin/events"}
EXAMPLES_PER_OPERATION = 12
# What the contract promises: no 5xx, and every status, content type, header and body is the
# documented one. (Acceptance of schema-valid data is not among them: the shared models carry
# validators JSON Schema cannot express, such as IANA time zones and strftime formats.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[RunningServer]:
    with run_in_thread(make_settings(), tmp_path / "srv") as running:
        yield running


def _device_token(live: RunningServer) -> str:
    admin = {"Authorization": f"Bearer {live.admin_token}"}
    with httpx.Client(base_url=live.url) as client:
        created = client.post("/api/v1/pairings", json={"hardware_id": "fuzz"}).json()
        client.post(
            "/api/v1/admin/pairings/claim",
            json={"code": created["code"], "name": "f"},
            headers=admin,
        )
        paired = client.get(
            f"/api/v1/pairings/{created['pairing_id']}",
            headers={"Authorization": f"Bearer {created['poll_token']}"},
        ).json()
    token: str = paired["device_token"]
    return token


def _fuzz(operation: Any, base_url: str, headers: dict[str, str]) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=15)

    check()


def test_openapi_schema_holds_under_fuzzing(live: RunningServer) -> None:
    raw = httpx.get(f"{live.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    device = {"Authorization": f"Bearer {_device_token(live)}"}
    admin = {"Authorization": f"Bearer {live.admin_token}"}
    # An operation schemathesis cannot load is a defect in our schema: .ok() raises on it.
    operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
    failures = []
    tested = 0
    for operation in operations:
        if operation.path in STREAMING:
            continue
        headers = admin if operation.path.startswith("/api/v1/admin/") else device
        try:
            _fuzz(operation, live.url, headers)
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
        tested += 1
    assert failures == []
    assert tested == len(operations) - len(STREAMING)

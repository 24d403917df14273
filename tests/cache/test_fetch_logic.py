"""One download attempt's decisions, with httpx.MockTransport standing in for the server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from cache._fetch import FetchRefused, RetryAfter, ServerFailed, download
from core import HashMismatch

BODY = bytes(range(256)) * 400
SHA = hashlib.sha256(BODY).hexdigest()


def client_for(handler: httpx.MockTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://assets.test", transport=handler)


async def test_a_complete_part_is_verified_without_any_request(tmp_path: Path) -> None:
    part = tmp_path / "x.part"
    part.write_bytes(BODY)

    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    async with client_for(httpx.MockTransport(handler)) as client:
        await download(client, SHA, part, size=len(BODY))


async def test_416_for_a_part_that_is_already_whole_completes_it(tmp_path: Path) -> None:
    part = tmp_path / "x.part"
    part.write_bytes(BODY)
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("range"))
        return httpx.Response(416, headers={"Content-Range": f"bytes */{len(BODY)}"})

    async with client_for(httpx.MockTransport(handler)) as client:
        await download(client, SHA, part, size=None)  # an import with an unknown size
    assert seen == [f"bytes={len(BODY)}-"]
    assert part.read_bytes() == BODY


async def test_a_206_at_the_wrong_offset_discards_the_part(tmp_path: Path) -> None:
    part = tmp_path / "x.part"
    part.write_bytes(BODY[:1000])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            206, headers={"Content-Range": f"bytes 0-{len(BODY) - 1}/{len(BODY)}"}, content=BODY
        )

    async with client_for(httpx.MockTransport(handler)) as client:
        with pytest.raises(ServerFailed, match="wrong offset"):
            await download(client, SHA, part, size=len(BODY))
    assert not part.exists()


async def test_a_200_to_a_range_request_starts_over(tmp_path: Path) -> None:
    part = tmp_path / "x.part"
    part.write_bytes(b"stale bytes of another version")

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["if-range"] == f'"{SHA}"'
        return httpx.Response(200, content=BODY)

    async with client_for(httpx.MockTransport(handler)) as client:
        await download(client, SHA, part, size=len(BODY))
    assert part.read_bytes() == BODY


async def test_a_body_longer_than_the_manifest_says_is_refused(tmp_path: Path) -> None:
    part = tmp_path / "x.part"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=BODY + b"tail")

    async with client_for(httpx.MockTransport(handler)) as client:
        with pytest.raises(HashMismatch, match=f"more than {len(BODY)} bytes"):
            await download(client, SHA, part, size=len(BODY))


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (429, {"Retry-After": "7"}, RetryAfter),
        (503, {}, RetryAfter),
        (500, {}, ServerFailed),
        (404, {}, FetchRefused),
        (401, {}, FetchRefused),
        (304, {}, ServerFailed),
    ],
)
async def test_status_codes_map_to_what_the_retry_policy_needs(
    tmp_path: Path, status: int, headers: dict[str, str], error: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers)

    async with client_for(httpx.MockTransport(handler)) as client:
        with pytest.raises(error) as caught:
            await download(client, SHA, tmp_path / "x.part", size=len(BODY))
    if status == 429:
        assert isinstance(caught.value, RetryAfter) and caught.value.retry_after == 7
    if status == 503:
        assert isinstance(caught.value, RetryAfter) and caught.value.retry_after is None

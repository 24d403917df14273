"""Bearer authentication for the device's HTTP clients."""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx


class TokenAuth(httpx.Auth):
    """Bearer auth read at request time: the cache follows re-pairing without a new client."""

    def __init__(self, token: Callable[[], str | None]) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request

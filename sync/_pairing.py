"""Pairing: ask for a code, show it, long-poll until an operator claims it; a new code on expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from core import PairingExpired, ProtocolError
from protocol import PairingCreated, PairingPaired, PairingRequest
from sync._client import DeviceClient, RequestFailed
from sync._state import Credentials

log = logging.getLogger(__name__)

ShowCode = Callable[[PairingCreated], None]
Now = Callable[[], dt.datetime]
LONG_POLL_S = 25.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _wait_for_claim(
    client: DeviceClient,
    created: PairingCreated,
    *,
    long_poll_s: float,
    retry_s: float,
    now: Now,
) -> PairingPaired:
    """Long-poll until claimed; ``PairingExpired`` when the code lapses."""
    while True:
        remaining = (created.expires_at - now()).total_seconds()
        if remaining <= 0:
            raise PairingExpired(f"pairing code expired at {created.expires_at.isoformat()}")
        try:
            status = await client.pairing_status(
                created.pairing_id, created.poll_token, wait_s=min(long_poll_s, remaining)
            )
        except RequestFailed as exc:
            if not exc.transient:
                raise
            log.warning("pairing poll failed; retrying", extra={"fields": {"error": str(exc)}})
            await asyncio.sleep(max(exc.retry_after or 0.0, retry_s))
            continue
        if isinstance(status, PairingPaired):
            return status
        # A server that answers "pending" at once (no long-poll) is polled at its own pace.
        await asyncio.sleep(created.poll_after_s)


async def pair(
    client: DeviceClient,
    request: PairingRequest,
    show_code: ShowCode,
    *,
    long_poll_s: float = LONG_POLL_S,
    retry_s: float = 5.0,
    now: Now = utc_now,
) -> Credentials:
    """Pair this device; returns its credentials. Transient server failures are retried.

    ``now``: the device's wall time, which a code's expiry is read against."""
    while True:
        try:
            created = await client.create_pairing(request)
        except RequestFailed as exc:
            if not exc.transient and exc.status != 409:
                raise
            wait = max(exc.retry_after or 0.0, retry_s)
            log.warning(
                "cannot request a pairing code; retrying",
                extra={"fields": {"error": str(exc), "retry_in_s": wait}},
            )
            await asyncio.sleep(wait)
            continue
        log.info(
            "pairing code issued",
            extra={"fields": {"code": created.code, "expires_at": created.expires_at.isoformat()}},
        )
        show_code(created)
        try:
            paired = await _wait_for_claim(
                client, created, long_poll_s=long_poll_s, retry_s=retry_s, now=now
            )
        except PairingExpired:
            log.info("pairing code expired; asking for a new one")
            continue
        except ProtocolError as exc:
            log.error("pairing status unreadable; new code", extra={"fields": {"error": str(exc)}})
            await asyncio.sleep(retry_s)
            continue
        log.info("device paired", extra={"fields": {"device_id": paired.device_id}})
        return Credentials(
            server_url=client.base_url, device_id=paired.device_id, device_token=paired.device_token
        )

"""Pairing: ask for a code, show it, long-poll until an operator claims it; a new code on expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from core import PairingExpired, ProtocolError, RetryPolicy, retrying
from protocol import PairingCreated, PairingPaired, PairingRequest
from sync._client import DeviceClient, RequestFailed
from sync._state import Credentials

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger(__name__)

ShowCode = Callable[[PairingCreated], None]
Now = Callable[[], dt.datetime]
LONG_POLL_S = 25.0
# An installer may be waiting in front of the screen: the back-off stays short.
PAIRING_RETRY = RetryPolicy(initial_s=5.0, max_s=30.0)


def _worth_retrying(exc: Exception) -> bool:
    # 409: this hardware id has a pairing under way (a restart mid-pairing); it lapses soon.
    return isinstance(exc, RequestFailed) and (exc.transient or exc.status == 409)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "cannot request a pairing code; retrying",
        extra={"fields": {"error": str(error), "retry_in_s": round(state.upcoming_sleep, 3)}},
    )


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _wait_for_claim(
    client: DeviceClient,
    created: PairingCreated,
    *,
    long_poll_s: float,
    retry: RetryPolicy,
    now: Now,
) -> PairingPaired:
    """Long-poll until claimed; ``PairingExpired`` when the code lapses."""
    failures = 0
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
            failures += 1
            delay = retry.delay(failures, exc.retry_after)
            log.warning(
                "pairing poll failed; retrying",
                extra={"fields": {"error": str(exc), "retry_in_s": round(delay, 3)}},
            )
            await asyncio.sleep(delay)
            continue
        failures = 0
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
    retry: RetryPolicy = PAIRING_RETRY,
    now: Now = utc_now,
) -> Credentials:
    """Pair this device; returns its credentials. Transient server failures are retried.

    ``now``: the device's wall time, which a code's expiry is read against."""
    unreadable = 0
    while True:
        async for attempt in retrying(retry, retry_on=_worth_retrying, before_sleep=_log_retry):
            with attempt:
                created = await client.create_pairing(request)
        log.info(
            "pairing code issued",
            extra={"fields": {"code": created.code, "expires_at": created.expires_at.isoformat()}},
        )
        show_code(created)
        try:
            paired = await _wait_for_claim(
                client, created, long_poll_s=long_poll_s, retry=retry, now=now
            )
        except PairingExpired:
            log.info("pairing code expired; asking for a new one")
            continue
        except ProtocolError as exc:
            unreadable += 1
            log.error("pairing status unreadable; new code", extra={"fields": {"error": str(exc)}})
            await asyncio.sleep(retry.delay(unreadable))
            continue
        log.info("device paired", extra={"fields": {"device_id": paired.device_id}})
        return Credentials(
            server_url=client.base_url, device_id=paired.device_id, device_token=paired.device_token
        )

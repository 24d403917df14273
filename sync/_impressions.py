"""Proof of play: every item start and end goes to the sqlite queue first, then up in batches.

Each impression carries a random UUID the server deduplicates on, so a batch re-sent after a
lost acknowledgement is counted once. Rows leave the queue only once acknowledged.

Writes are committed one transaction per flush: at once by default, or, with
``flush_delay_s``, gathering what is recorded meanwhile (at most ``FLUSH_BATCH`` rows wait),
which the simulator uses at thousands of switches per second. Either way a row is stored once
``ImpressionQueue.add`` returns and survives a crash from then on; ``drain`` writes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Literal

from core import ProtocolError, RetryPolicy, retrying
from protocol import Impression, ImpressionBatch
from sync._client import DeviceClient, RequestFailed
from sync._heartbeat import SyncReport
from sync._store import ImpressionQueue

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger(__name__)

BATCH = 500
FLUSH_BATCH = 200  # a delayed flush waits no longer once this many impressions are pending


class ImpressionRecorder:
    """Takes playback events on the event loop; writes them to disk in a worker thread."""

    def __init__(
        self, queue: ImpressionQueue, report: SyncReport, *, flush_delay_s: float = 0.0
    ) -> None:
        self.queue = queue
        self.report = report
        self.flush_delay_s = flush_delay_s  # real seconds a flush gathers records before writing
        self._pending: list[Impression] = []
        self._hurry = asyncio.Event()  # write now: drain() or FLUSH_BATCH rows pending
        self._written = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._draining = False  # drain() waits for the flusher: it must not wait out a delay
        self.uploaded = 0
        self.duplicates = 0  # re-sent after a lost acknowledgement; the server counted them once
        self.report.impressions_dropped = queue.dropped

    def record(
        self,
        *,
        layout: str,
        zone: str,
        item: str,
        event: Literal["start", "end"],
        at: dt.datetime,
        duration_ms: int | None = None,
    ) -> None:
        """Fire-and-forget from a playback listener: never blocks the frame loop."""
        if self.queue.database.closed:
            return  # the daemon is past its last flush: the player has stopped
        self._pending.append(
            Impression(
                id=str(uuid.uuid4()),
                layout=layout,
                zone=zone,
                item=item,
                event=event,
                at=at,
                duration_ms=duration_ms,
            )
        )
        if len(self._pending) >= FLUSH_BATCH:
            self._hurry.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Write what is pending after the delay (at once when hurried), one batch per wake.

        Records that arrive while a batch is being written wait for their own delay (or a
        full batch, or a drain): they are not written behind the batch's back, so how many
        transactions a run makes does not depend on thread timing.
        """
        while self._pending:
            if self.flush_delay_s > 0 and not self._hurry.is_set() and not self._draining:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self.flush_delay_s)
            self._hurry.clear()
            await self._write(self._take())
            if len(self._pending) >= FLUSH_BATCH:
                self._hurry.set()

    def _take(self) -> list[Impression]:
        batch, self._pending = self._pending, []
        return batch

    async def _write(self, batch: list[Impression]) -> None:
        if batch:
            dropped = await asyncio.to_thread(self.queue.add, batch)
            if dropped:
                self.report.impressions_dropped += dropped
                log.warning(
                    "impression queue full; dropped the oldest",
                    extra={"fields": {"dropped": dropped}},
                )
        self._written.set()

    async def flush(self) -> None:
        """Write everything pending now, including what arrives meanwhile."""
        while self._pending:
            await self._write(self._take())
        self._written.set()

    async def drain(self) -> None:
        """Write everything recorded so far, including a flush already under way."""
        self._hurry.set()  # a flush gathering records writes them now
        self._draining = True
        try:
            if self._flusher is not None and not self._flusher.done():
                await asyncio.shield(self._flusher)
            await self.flush()
        finally:
            self._draining = False

    async def upload_once(self, client: DeviceClient) -> int:
        """Send queued impressions in batches until the queue is empty; returns how many."""
        sent = 0
        while batch := await asyncio.to_thread(self.queue.peek, BATCH):
            ack = await client.impressions(ImpressionBatch(impressions=batch))
            await asyncio.to_thread(self.queue.remove, [i.id for i in batch])
            sent += len(batch)
            self.uploaded += len(batch)
            self.duplicates += ack.duplicates
            log.debug(
                "impressions delivered",
                extra={"fields": {"accepted": ack.accepted, "duplicates": ack.duplicates}},
            )
        return sent

    async def run_uploads(self, client: DeviceClient, *, interval_s: float) -> None:
        """Upload whenever something was written, at most once per ``interval_s``.

        A failed upload stays on disk and is tried again by the retry policy, from twice the
        interval up to ten times it (at least the server's Retry-After, up to its cap).
        """
        retry = RetryPolicy(initial_s=2 * interval_s, max_s=10 * interval_s)
        while True:
            async for attempt in retrying(
                retry, retry_on=_upload_failed, before_sleep=_log_upload_retry
            ):
                with attempt:
                    await self.upload_once(client)
            self._written.clear()
            await asyncio.sleep(interval_s)
            if not len(self._pending) and not await asyncio.to_thread(len, self.queue):
                await self._written.wait()


def _upload_failed(exc: Exception) -> bool:
    # A body the contract does not allow is a server bug: retried like an outage.
    return isinstance(exc, RequestFailed | ProtocolError)


def _log_upload_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "impression upload failed; kept on disk",
        extra={"fields": {"error": str(error), "retry_in_s": round(state.upcoming_sleep, 3)}},
    )

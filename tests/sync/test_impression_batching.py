"""Proof of play written in batches (``flush_delay_s``): fewer transactions, nothing lost."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path

from protocol import Impression
from sync import ImpressionQueue, ImpressionRecorder, SyncDatabase, SyncReport, open_database
from sync._impressions import FLUSH_BATCH


class CountingQueue(ImpressionQueue):
    """The real queue, counting its transactions."""

    adds = 0

    def add(self, impressions: list[Impression]) -> int:
        self.adds += 1
        return super().add(impressions)


def _recorder(tmp_path: Path, delay_s: float) -> tuple[ImpressionRecorder, CountingQueue]:
    queue = CountingQueue(open_database(tmp_path))
    return ImpressionRecorder(queue, SyncReport(), flush_delay_s=delay_s), queue


def _record(recorder: ImpressionRecorder, count: int) -> None:
    at = dt.datetime.now(dt.UTC)
    for n in range(count):
        recorder.record(layout="l1", zone="main", item=f"i{n}", event="start", at=at)


async def _until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    for _ in range(int(within_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time allowed")


async def test_without_a_delay_each_record_is_written_at_once(tmp_path: Path) -> None:
    recorder, queue = _recorder(tmp_path, 0.0)
    _record(recorder, 1)
    await _until(lambda: len(queue) == 1)
    _record(recorder, 1)
    await _until(lambda: len(queue) == 2)
    assert queue.adds == 2


async def test_a_delay_gathers_records_into_one_transaction(tmp_path: Path) -> None:
    recorder, queue = _recorder(tmp_path, 0.2)
    for _ in range(5):
        _record(recorder, 2)
        await asyncio.sleep(0.01)
    assert len(queue) == 0  # still gathering
    await _until(lambda: len(queue) == 10)
    assert queue.adds == 1


async def test_drain_writes_what_a_delayed_flush_gathers_at_once(tmp_path: Path) -> None:
    recorder, queue = _recorder(tmp_path, 3600.0)
    _record(recorder, 3)
    await asyncio.wait_for(recorder.drain(), 5)  # would wait an hour otherwise
    assert len(queue) == 3
    items = [i.item for i in queue.peek(10)]
    assert items == ["i0", "i1", "i2"]  # in the order played


class GatedQueue(CountingQueue):
    """Each write waits for its gate, so a test can record while a write is under way."""

    def __init__(self, database: SyncDatabase) -> None:
        super().__init__(database)
        self.gates = [threading.Event(), threading.Event()]
        self.entered = [threading.Event(), threading.Event()]

    def add(self, impressions: list[Impression]) -> int:
        index = min(self.adds, 1)
        self.entered[index].set()
        if not self.gates[index].wait(10):
            raise AssertionError("gate never opened")
        return super().add(impressions)


async def test_a_full_batch_is_written_without_waiting_for_the_delay(tmp_path: Path) -> None:
    queue = GatedQueue(open_database(tmp_path))
    recorder = ImpressionRecorder(queue, SyncReport(), flush_delay_s=3600.0)
    _record(recorder, FLUSH_BATCH)
    assert await asyncio.to_thread(queue.entered[0].wait, 10), "a full batch is written at once"
    _record(recorder, 1)  # arrives while the batch is being written: it waits for the next one
    queue.gates[0].set()
    await _until(lambda: len(queue) == FLUSH_BATCH)
    # The record that came during the write is not written behind the batch's back: no second
    # write starts before a drain (or another full batch, or the delay).
    assert not await asyncio.to_thread(queue.entered[1].wait, 0.5)
    queue.gates[1].set()
    await asyncio.wait_for(recorder.drain(), 10)
    assert len(queue) == FLUSH_BATCH + 1
    assert queue.adds == 2


async def test_drain_during_a_write_does_not_wait_out_the_delay(tmp_path: Path) -> None:
    queue = GatedQueue(open_database(tmp_path))
    recorder = ImpressionRecorder(queue, SyncReport(), flush_delay_s=3600.0)
    _record(recorder, 2)  # gathering: the flusher waits out its delay
    draining = asyncio.create_task(recorder.drain())  # the device stops: write now
    assert await asyncio.to_thread(queue.entered[0].wait, 10)
    _record(recorder, 1)  # a last record while that write is under way
    for gate in queue.gates:
        gate.set()
    await asyncio.wait_for(draining, 10)  # not an hour
    assert len(queue) == 3

"""The retry policy (core._retry), with a fake sleep: nothing here waits for real."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable

import pytest

from core import (
    RETRY_AFTER_MAX_S,
    RetryPolicy,
    honour_retry_after,
    parse_retry_after,
    retry_after_of,
    retrying,
    retrying_blocking,
    sleep_or_stop,
    spread,
)


class Busy(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__(f"busy (retry after {retry_after})")
        self.retry_after = retry_after


class Broken(Exception):
    pass


class FakeSleep:
    """Records each wait and returns at once (or never, with ``forever``)."""

    def __init__(self, *, forever: bool = False) -> None:
        self.waits: list[float] = []
        self.forever = forever
        self.waiting = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.waiting.set()
        if self.forever:
            await asyncio.Event().wait()

    def blocking(self, seconds: float) -> None:
        self.waits.append(seconds)


def _steady(value: float) -> Callable[[], float]:
    return lambda: value


def _failing(*failures: BaseException, result: str = "done") -> Callable[[], str]:
    """A callable raising ``failures`` in turn, then returning ``result``; counts its calls."""
    queue = list(failures)
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if queue:
            raise queue.pop(0)
        return result

    call.calls = calls  # type: ignore[attr-defined]
    return call


async def _run(
    policy: RetryPolicy,
    call: Callable[[], str],
    sleep: FakeSleep,
    *,
    retry_on: Callable[[Exception], bool] = lambda exc: isinstance(exc, Busy),
    stop: asyncio.Event | None = None,
) -> str:
    async for attempt in retrying(policy, retry_on=retry_on, stop=stop, sleep=sleep):
        with attempt:
            return call()
    raise AssertionError("unreachable: retrying ends by returning or raising")


# --- Retry-After --------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 11, 21, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("Sat, 21 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sat, 21 Nov 2026 11:00:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after("1.5") is None  # not a delta-seconds (RFC 9110: digits only)
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_retry_after_is_reported_as_said_and_capped_when_waited() -> None:
    # A message may quote the server; a wait never exceeds the cap.
    assert parse_retry_after("86400") == 86400.0
    assert honour_retry_after(1.0, 86400.0) == RETRY_AFTER_MAX_S == 3600.0
    assert honour_retry_after(1.0, 30.0) == 30.0
    assert honour_retry_after(45.0, 30.0) == 45.0  # a floor, not a replacement
    assert honour_retry_after(5.0, None) == 5.0
    assert honour_retry_after(5.0, -3.0) == 5.0
    assert honour_retry_after(5.0, 900.0, cap_s=60.0) == 60.0


def test_the_retry_after_of_a_failure_is_its_attribute() -> None:
    assert retry_after_of(Busy(7)) == 7.0
    assert retry_after_of(Busy(None)) is None
    assert retry_after_of(Broken()) is None
    assert retry_after_of(None) is None
    odd = Busy()
    odd.retry_after = float("nan")
    assert retry_after_of(odd) is None


# --- the policy ---------------------------------------------------------------------------


def test_backoff_doubles_from_initial_up_to_max() -> None:
    policy = RetryPolicy(initial_s=0.5, max_s=5.0)
    assert [policy.ceiling(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.ceiling(10_000) == 5.0  # no float overflow after days of failures


def test_full_jitter_draws_below_the_ceiling() -> None:
    assert RetryPolicy(initial_s=2.0, max_s=60.0, rng=_steady(0.0)).delay(3) == 0.0
    assert RetryPolicy(initial_s=2.0, max_s=60.0, rng=_steady(0.5)).delay(3) == 4.0
    assert RetryPolicy(initial_s=2.0, max_s=60.0, rng=_steady(0.999)).delay(3) == pytest.approx(
        7.992
    )
    policy = RetryPolicy(initial_s=1.0, max_s=8.0)
    draws = [policy.delay(4) for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    # Spread over the whole range: a fleet does not come back in lockstep.
    assert min(draws) < 1.0 and max(draws) > 7.0


def test_retry_after_is_a_floor_under_the_backoff_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_s=1.0, max_s=60.0, rng=_steady(0.5))
    assert policy.delay(1, retry_after=30.0) == 30.0
    assert policy.delay(8, retry_after=1.0) == 30.0  # the back-off is longer
    assert policy.delay(1, retry_after=86_400.0) == 3600.0
    capped = RetryPolicy(initial_s=1.0, max_s=60.0, retry_after_max_s=120.0, rng=_steady(0.5))
    assert capped.delay(1, retry_after=86_400.0) == 120.0


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        RetryPolicy(initial_s=10.0, max_s=1.0)
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="retry_after_max_s"):
        RetryPolicy(retry_after_max_s=-1.0)


def test_spread_is_within_twenty_percent() -> None:
    assert spread(30, _steady(0.0)) == pytest.approx(24.0)
    assert spread(30, _steady(1.0)) == pytest.approx(36.0)
    assert spread(30, _steady(0.5)) == pytest.approx(30.0)


# --- retrying (asyncio) -------------------------------------------------------------------


async def test_retries_until_success_waiting_the_policys_delays() -> None:
    sleep = FakeSleep()
    call = _failing(Busy(), Busy(), Busy())
    policy = RetryPolicy(initial_s=1.0, max_s=3.0, rng=_steady(0.5))
    assert await _run(policy, call, sleep) == "done"
    assert sleep.waits == [0.5, 1.0, 1.5]
    assert len(call.calls) == 4  # type: ignore[attr-defined]


async def test_a_servers_retry_after_is_honoured_and_capped() -> None:
    sleep = FakeSleep()
    call = _failing(Busy(retry_after=30), Busy(retry_after=86_400), Busy())
    await _run(RetryPolicy(initial_s=1.0, max_s=10.0, rng=_steady(0.5)), call, sleep)
    assert sleep.waits == [30.0, 3600.0, 2.0]


async def test_a_failure_not_named_is_raised_at_once() -> None:
    sleep = FakeSleep()
    call = _failing(Busy(), Broken())
    with pytest.raises(Broken):
        await _run(RetryPolicy(rng=_steady(0.5)), call, sleep)
    assert len(sleep.waits) == 1
    assert len(call.calls) == 2  # type: ignore[attr-defined]


async def test_attempts_run_out_with_the_last_failure() -> None:
    sleep = FakeSleep()
    last = Busy(retry_after=2)
    call = _failing(Busy(), Busy(), last, Busy())
    with pytest.raises(Busy) as caught:
        await _run(RetryPolicy(attempts=3, rng=_steady(0.0)), call, sleep)
    assert caught.value is last
    assert sleep.waits == [0.0, 0.0]  # no wait after the last attempt
    assert len(call.calls) == 3  # type: ignore[attr-defined]


async def test_before_sleep_sees_each_failure_and_its_wait() -> None:
    seen: list[tuple[int, str, float]] = []
    sleep = FakeSleep()
    call = _failing(Busy(), Busy(retry_after=9))

    async def log(state: object) -> None:
        outcome = state.outcome  # type: ignore[attr-defined]
        seen.append((state.attempt_number, str(outcome.exception()), state.upcoming_sleep))  # type: ignore[attr-defined]

    policy = RetryPolicy(initial_s=2.0, max_s=8.0, rng=_steady(0.5))
    async for attempt in retrying(
        policy, retry_on=lambda e: isinstance(e, Busy), before_sleep=log, sleep=sleep
    ):
        with attempt:
            call()
    assert seen == [(1, "busy (retry after None)", 1.0), (2, "busy (retry after 9)", 9.0)]


async def test_cancellation_in_an_attempt_is_never_retried_nor_swallowed() -> None:
    sleep = FakeSleep()
    call = _failing(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        # Even a predicate that would retry anything does not see it.
        await _run(RetryPolicy(), call, sleep, retry_on=lambda exc: True)
    assert sleep.waits == []
    assert len(call.calls) == 1  # type: ignore[attr-defined]


async def test_keyboard_interrupt_is_not_retried() -> None:
    call = _failing(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        await _run(RetryPolicy(), call, FakeSleep(), retry_on=lambda exc: True)


async def test_cancelling_the_task_during_a_wait_ends_the_retrying() -> None:
    sleep = FakeSleep(forever=True)
    call = _failing(*[Busy()] * 5)
    task = asyncio.create_task(_run(RetryPolicy(), call, sleep))
    await sleep.waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(call.calls) == 1  # type: ignore[attr-defined]


async def test_a_stop_event_ends_a_wait_at_once_with_the_last_failure() -> None:
    stop = asyncio.Event()
    sleep = FakeSleep(forever=True)  # an hour's back-off, say: only the stop can end it
    last = Busy(retry_after=3600)
    call = _failing(last, Busy())
    task = asyncio.create_task(_run(RetryPolicy(), call, sleep, stop=stop))
    await sleep.waiting.wait()
    assert sleep.waits == [3600.0]
    stop.set()
    with pytest.raises(Busy) as caught:
        await asyncio.wait_for(task, 5)
    assert caught.value is last
    assert len(call.calls) == 1  # type: ignore[attr-defined]
    assert asyncio.all_tasks() == {asyncio.current_task()}  # the wait left nothing behind


async def test_a_stop_set_before_a_failure_gives_up_without_waiting() -> None:
    stop = asyncio.Event()
    stop.set()
    sleep = FakeSleep()
    call = _failing(Busy(), Busy())
    with pytest.raises(Busy):
        await _run(RetryPolicy(), call, sleep, stop=stop)
    assert sleep.waits == []
    assert len(call.calls) == 1  # type: ignore[attr-defined]


async def test_sleep_or_stop() -> None:
    sleep = FakeSleep()
    assert await sleep_or_stop(2.0, sleep=sleep) is False
    stop = asyncio.Event()
    assert await sleep_or_stop(3.0, stop, sleep=sleep) is False
    assert sleep.waits == [2.0, 3.0]
    stop.set()
    assert await sleep_or_stop(4.0, stop, sleep=sleep) is True
    assert sleep.waits == [2.0, 3.0]  # already stopped: no wait at all


async def test_sleep_or_stop_cancelled_leaves_nothing_running() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(sleep_or_stop(3600.0, stop, sleep=FakeSleep(forever=True)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == {asyncio.current_task()}


# --- retrying_blocking (threads) ----------------------------------------------------------


def _run_blocking(
    policy: RetryPolicy,
    call: Callable[[], str],
    sleep: FakeSleep,
    *,
    retry_on: Callable[[Exception], bool] = lambda exc: isinstance(exc, Busy),
    stop: threading.Event | None = None,
) -> str:
    for attempt in retrying_blocking(policy, retry_on=retry_on, stop=stop, sleep=sleep.blocking):
        with attempt:
            return call()
    raise AssertionError("unreachable: retrying ends by returning or raising")


def test_blocking_retries_with_the_same_policy() -> None:
    sleep = FakeSleep()
    call = _failing(Busy(), Busy(retry_after=86_400), Busy())
    policy = RetryPolicy(initial_s=1.0, max_s=10.0, rng=_steady(0.5))
    assert _run_blocking(policy, call, sleep) == "done"
    assert sleep.waits == [0.5, 3600.0, 2.0]


def test_blocking_gives_up_after_its_attempts_or_on_another_failure() -> None:
    sleep = FakeSleep()
    with pytest.raises(Busy):
        _run_blocking(RetryPolicy(attempts=2, rng=_steady(0.0)), _failing(Busy(), Busy()), sleep)
    with pytest.raises(Broken):
        _run_blocking(RetryPolicy(), _failing(Broken()), sleep)
    with pytest.raises(KeyboardInterrupt):
        _run_blocking(RetryPolicy(), _failing(KeyboardInterrupt()), sleep, retry_on=lambda e: True)
    assert len(sleep.waits) == 1


def test_blocking_stop_ends_the_wait_at_once() -> None:
    stop = threading.Event()
    last = Busy(retry_after=3600)
    call = _failing(last, Busy())
    waits: list[float | None] = []

    def stop_now(state: object) -> None:
        waits.append(state.upcoming_sleep)  # type: ignore[attr-defined]
        stop.set()  # as another thread would, once the wait was decided

    retries = retrying_blocking(
        RetryPolicy(), retry_on=lambda e: isinstance(e, Busy), stop=stop, before_sleep=stop_now
    )
    with pytest.raises(Busy) as caught:
        for attempt in retries:
            with attempt:
                call()
    assert waits == [3600.0]  # an hour (Retry-After) that the stop cut short
    assert caught.value is last
    assert len(call.calls) == 1  # type: ignore[attr-defined]

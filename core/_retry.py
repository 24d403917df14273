"""Retries: the one policy for every call that is tried again after a failure.

- Back-off is exponential with full jitter: after the n-th failure in a row the wait is drawn
  uniformly from ``[0, min(max_s, initial_s * 2**(n-1))]``, so a fleet that lost its server
  together does not come back in lockstep.
- A server's ``Retry-After`` (delta-seconds or an HTTP date, carried by the failure as its
  ``retry_after`` attribute) is a floor under that wait, honoured up to ``retry_after_max_s``
  (an hour by default): a proxy's typo or a ``Retry-After: 86400`` must not park a kiosk for
  a day.
- Cancellation is never retried nor swallowed: only the ``Exception`` subclasses the caller
  names are retried; ``CancelledError``, ``KeyboardInterrupt`` and ``SystemExit`` go through.
  A stop event ends a wait at once, and the retrying with it: the last failure is raised.

``retrying()`` (asyncio) and ``retrying_blocking()`` (threads: the admin client) drive
tenacity with a ``RetryPolicy``. Loops that do other work between attempts (a heartbeat, a
long-poll, a queue) use ``RetryPolicy.delay()`` and ``sleep_or_stop()`` themselves; periodic work is
spread with ``spread()``. tenacity is imported when a retry loop is made, not with ``core``:
the renderers import ``core`` and must not load the network stack.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState, Retrying

RETRY_AFTER_MAX_S = 3600.0
SPREAD = 0.2  # periodic work runs at its interval ±20 %

Rng = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
BeforeSleep = Callable[["RetryCallState"], Awaitable[None] | None]


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), as the
    server said it (a date in the past is 0); None when absent or unreadable.

    Not capped: a message may quote it. Waits go through ``RetryPolicy``, which caps it.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def retry_after_of(failure: BaseException | None) -> float | None:
    """The ``Retry-After`` a failure carries (its ``retry_after`` attribute, in seconds)."""
    value = getattr(failure, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def honour_retry_after(
    delay_s: float, retry_after: float | None, *, cap_s: float = RETRY_AFTER_MAX_S
) -> float:
    """``delay_s``, or the server's ``retry_after`` when longer, but never more than ``cap_s``
    on the server's word."""
    if retry_after is None:
        return delay_s
    return max(delay_s, min(max(retry_after, 0.0), cap_s))


def spread(interval_s: float, rng: Rng = random.random) -> float:
    """``interval_s`` ±20 %, so a fleet rebooted together does not beat in lockstep."""
    return interval_s * (1.0 - SPREAD + 2 * SPREAD * rng())


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How long to wait after each failure in a row, and when to give up.

    ``initial_s`` is the ceiling of the first wait, doubled after each failure up to
    ``max_s``; the wait is drawn below it (full jitter). ``attempts``: how many tries in all
    (None: until one succeeds, the task is cancelled or a stop event is set).
    """

    initial_s: float = 1.0
    max_s: float = 60.0
    attempts: int | None = None
    retry_after_max_s: float = RETRY_AFTER_MAX_S
    rng: Rng = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.initial_s <= self.max_s:
            raise ValueError(f"need 0 <= initial_s <= max_s, got {self.initial_s}, {self.max_s}")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be >= 1 or None, got {self.attempts}")
        if self.retry_after_max_s < 0:
            raise ValueError(f"retry_after_max_s must be >= 0, got {self.retry_after_max_s}")

    def ceiling(self, failures: int) -> float:
        """The longest back-off after ``failures`` failures in a row (before jitter)."""
        if failures < 1:
            return 0.0
        # 2.0**1024 overflows: long before that, max_s is the ceiling anyway.
        exponent = min(failures - 1, 512)
        return min(self.max_s, self.initial_s * 2.0**exponent)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure in a row: full jitter below
        ``ceiling(failures)``, and at least the server's ``retry_after`` up to the cap."""
        backoff = self.ceiling(failures) * self.rng()
        return honour_retry_after(backoff, retry_after, cap_s=self.retry_after_max_s)

    def exhausted(self, attempts_made: int) -> bool:
        return self.attempts is not None and attempts_made >= self.attempts


async def sleep_or_stop(
    delay_s: float, stop: asyncio.Event | None = None, *, sleep: Sleep = asyncio.sleep
) -> bool:
    """Wait ``delay_s`` seconds, or until ``stop`` is set; True when ``stop`` ended it.

    Cancelling the caller cancels the wait (nothing is left running).
    """
    if stop is None:
        await sleep(delay_s)
        return False
    if stop.is_set():
        return True
    sleeper = asyncio.ensure_future(sleep(delay_s))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (sleeper, stopper):
            waiter.cancel()
        await asyncio.gather(sleeper, stopper, return_exceptions=True)
    return stop.is_set()


def _only_exceptions(retry_on: Callable[[Exception], bool]) -> Callable[[BaseException], bool]:
    def retryable(failure: BaseException) -> bool:
        # CancelledError, KeyboardInterrupt and SystemExit are not Exceptions: never retried.
        return isinstance(failure, Exception) and retry_on(failure)

    return retryable


class _Tracker:
    """What tenacity's hooks share (the asyncio and the thread flavour alike): the policy, the
    stop event, and the last failure, to raise when a stop ends a wait."""

    def __init__(self, policy: RetryPolicy, stop: asyncio.Event | threading.Event | None) -> None:
        self.policy = policy
        self.stop = stop
        self.failure: BaseException | None = None

    def wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        self.failure = failure
        return self.policy.delay(state.attempt_number, retry_after_of(failure))

    def give_up(self, state: RetryCallState) -> bool:
        stopped = self.stop is not None and self.stop.is_set()
        return stopped or self.policy.exhausted(state.attempt_number)

    def stopped(self) -> BaseException:
        assert self.failure is not None  # a wait follows a failure
        return self.failure

    def hooks(self, retry_on: Callable[[Exception], bool]) -> dict[str, Any]:
        """tenacity's arguments but ``sleep`` and ``before_sleep``."""
        from tenacity import retry_if_exception

        retry = retry_if_exception(_only_exceptions(retry_on))
        return {"stop": self.give_up, "wait": self.wait, "retry": retry, "reraise": True}


def retrying(
    policy: RetryPolicy,
    *,
    retry_on: Callable[[Exception], bool],
    stop: asyncio.Event | None = None,
    before_sleep: BeforeSleep | None = None,
    sleep: Sleep = asyncio.sleep,
) -> AsyncRetrying:
    """``async for attempt in retrying(...): with attempt: ...`` until the body succeeds.

    A failure for which ``retry_on`` is true is tried again after ``policy.delay``;
    ``before_sleep(state)`` runs first (``state.attempt_number``, ``state.outcome``,
    ``state.upcoming_sleep``: log it there). Any other failure, running out of attempts, or
    ``stop`` being set raises the last failure itself.
    """
    from tenacity import AsyncRetrying

    tracker = _Tracker(policy, stop)

    async def nap(seconds: float) -> None:
        if await sleep_or_stop(seconds, stop, sleep=sleep):
            raise tracker.stopped()

    return AsyncRetrying(sleep=nap, before_sleep=before_sleep, **tracker.hooks(retry_on))


def retrying_blocking(
    policy: RetryPolicy,
    *,
    retry_on: Callable[[Exception], bool],
    stop: threading.Event | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """``retrying()`` for a thread: ``for attempt in retrying_blocking(...): with attempt:``.

    A set ``stop`` (a ``threading.Event``) ends a wait at once and raises the last failure.
    """
    from tenacity import Retrying

    tracker = _Tracker(policy, stop)

    def nap(seconds: float) -> None:
        if stop is None:
            sleep(seconds)
        elif stop.wait(seconds):
            raise tracker.stopped()

    return Retrying(sleep=nap, before_sleep=before_sleep, **tracker.hooks(retry_on))

"""VideoOutputPool and run_blocking: reuse, disposal of dead handles, bounded waits."""

from __future__ import annotations

import threading

import pytest

from tests.fakes.fake_mpv import FakeMpv, FakeMpvFactory
from zones._mpv import VideoOutputLost
from zones._video_pool import AudioOwner, VideoOutputPool, run_blocking


async def test_run_blocking_returns_raises_and_gives_up_on_time() -> None:
    assert await run_blocking(lambda: 42, timeout_s=1, what="answer") == 42

    def broken() -> None:
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        await run_blocking(broken, timeout_s=1, what="broken")
    gate = threading.Event()
    with pytest.raises(VideoOutputLost, match=r"hang: mpv did not answer within 0\.05 s"):
        await run_blocking(gate.wait, timeout_s=0.05, what="hang")
    gate.set()


async def test_a_handle_that_died_while_idle_is_discarded_not_reused() -> None:
    factory = FakeMpvFactory()
    pool = VideoOutputPool(factory, spare=2, timeout_s=1)
    dead = await pool.acquire()
    assert isinstance(dead, FakeMpv)
    dead.crashed = True  # died with nobody listening
    pool.give_back(dead)
    fresh = await pool.acquire()  # waits for the unload, which finds the handle dead
    assert fresh is not dead and pool.discarded == 1 and pool.created == 2
    assert pool.close() and dead.closed


async def test_handles_beyond_the_spare_count_are_closed() -> None:
    factory = FakeMpvFactory()
    pool = VideoOutputPool(factory, spare=1, timeout_s=1)
    first, second = await pool.acquire(), await pool.acquire()
    pool.give_back(first)
    pool.give_back(second)
    assert pool.kept == 1
    assert pool.close()
    assert all(isinstance(o, FakeMpv) and o.closed for o in (first, second))


def test_audio_owner_is_one_zone_until_all_its_claims_are_released() -> None:
    owner = AudioOwner()
    assert owner.claim("left") and owner.claim("left")
    assert not owner.claim("right")
    owner.release("right")  # not the owner: no effect
    owner.release("left")
    assert not owner.claim("right")  # one claim of "left" still holds it
    owner.release("left")
    assert owner.claim("right") and owner.zone == "right"

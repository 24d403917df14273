"""The sqlite queues: bounded proof of play that survives kill -9, and the command ledger."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from protocol import Command, CommandResult, Impression
from sync import CommandLedger, ImpressionQueue, open_database


def impression(item: str = "i1") -> Impression:
    return Impression(
        id=str(uuid.uuid4()),
        layout="l1",
        zone="main",
        item=item,
        event="start",
        at=dt.datetime(2026, 11, 21, tzinfo=dt.UTC),
    )


def test_queue_keeps_order_and_removes_only_acknowledged(tmp_path: Path) -> None:
    queue = ImpressionQueue(open_database(tmp_path))
    batch = [impression(f"i{n}") for n in range(5)]
    queue.add(batch)
    assert [i.item for i in queue.peek(3)] == ["i0", "i1", "i2"]
    queue.remove([i.id for i in batch[:3]])
    assert [i.item for i in queue.peek(10)] == ["i3", "i4"]
    assert len(queue) == 2


def test_same_impression_twice_is_stored_once(tmp_path: Path) -> None:
    queue = ImpressionQueue(open_database(tmp_path))
    one = impression()
    queue.add([one])
    queue.add([one])
    assert len(queue) == 1


def test_queue_is_bounded_dropping_the_oldest_and_counting_them(tmp_path: Path) -> None:
    queue = ImpressionQueue(open_database(tmp_path), max_rows=10)
    assert queue.add([impression(f"i{n}") for n in range(25)]) == 15
    assert len(queue) == 10
    assert queue.peek(1)[0].item == "i15"
    assert queue.dropped == 15
    reopened = ImpressionQueue(open_database(tmp_path), max_rows=10)
    assert reopened.dropped == 15, "the dropped count survives a restart"


def test_impressions_survive_kill_9(tmp_path: Path) -> None:
    """Each write is committed before the next event: a SIGKILL loses nothing written."""
    script = textwrap.dedent(
        f"""
        import datetime as dt, sys, uuid
        from pathlib import Path
        from protocol import Impression
        from sync import ImpressionQueue, open_database
        queue = ImpressionQueue(open_database(Path({str(tmp_path)!r})))
        for n in range(200):
            queue.add([Impression(id=str(uuid.uuid4()), layout="l1", zone="z", item=f"i{{n}}",
                       event="start", at=dt.datetime.now(dt.UTC))])
            print(n, flush=True)
        sys.stdin.read()
        """
    )
    acknowledged = -1
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged == 120:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert acknowledged == 120
    queue = ImpressionQueue(open_database(tmp_path))
    assert len(queue) >= acknowledged + 1
    items = [i.item for i in queue.peek(1000)]
    assert items[: acknowledged + 1] == [f"i{n}" for n in range(acknowledged + 1)]


def test_a_command_id_is_claimed_once_even_across_restarts(tmp_path: Path) -> None:
    command = Command(id="c1", name="reload")
    assert CommandLedger(open_database(tmp_path)).claim(command)
    assert not CommandLedger(open_database(tmp_path)).claim(command)


def test_unacknowledged_results_are_kept_until_acked(tmp_path: Path) -> None:
    ledger = CommandLedger(open_database(tmp_path))
    ledger.claim(Command(id="c1", name="reload"))
    ledger.claim(Command(id="c2", name="identify"))
    ledger.record_result("c1", CommandResult(ok=True))
    assert ledger.unacked() == [("c1", CommandResult(ok=True)), ("c2", None)]
    ledger.mark_acked("c1")
    assert [cid for cid, _ in ledger.unacked()] == ["c2"]


def test_both_queues_commit_to_disk_before_returning(tmp_path: Path) -> None:
    """Proof of play and the command ledger must survive a power cut, not only a crash of the
    process: WAL with synchronous=FULL fsyncs the log at every commit (NORMAL or OFF would
    leave the last commits in the page cache). A power cut cannot be simulated in a test; the
    settings every connection runs with can be checked."""
    database = open_database(tmp_path)
    try:
        for user in (ImpressionQueue(database), CommandLedger(database)):
            conn = user.db.conn
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        database.close()

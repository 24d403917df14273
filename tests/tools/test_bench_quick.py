"""Every ``signage bench`` runs in ``--quick`` mode and reports each figure with its target.

The figures themselves are not asserted (a shared CI machine measures what it measures): the
run must end with status 0 (every target met) or 1 (a target missed), never 2 (could not run)
or a traceback, print every target next to its figure with ok/MISSED, and agree with its
own verdict. What "missed" means is tested once, on the shared policy (tools/bench/_verdict).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools import main
from tools.bench._heartbeats import Step, rates
from tools.bench._verdict import MISSED_EXIT, Verdict

TARGET_LINE = re.compile(r"^\[(ok|MISSED)\] (.+): (.+) \(target (<=|<|>=|>|==) (.+)\)$")


def _targets(out: str) -> list[re.Match[str]]:
    return [m for line in out.splitlines() if (m := TARGET_LINE.match(line))]


def _check_run(status: int, out: str, names: list[str]) -> None:
    assert status in (0, MISSED_EXIT), out
    found = _targets(out)
    for name in names:
        assert any(name in m[2] for m in found), f"no target for {name!r} in:\n{out}"
    missed = [m for m in found if m[1] == "MISSED"]
    assert status == (MISSED_EXIT if missed else 0), "the exit status follows the verdict"
    assert re.search(r"(all \d+ targets met|\d+ of \d+ targets MISSED) \(load average", out)


@pytest.mark.slow
def test_bench_cache_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bench", "cache", "--quick", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    _check_run(status, out, ["hashing throughput", "download throughput"])
    assert re.search(r"^hashing : cache .* ratio \d+\.\d\d \(target >= 0.9", out, re.M)
    assert "CPU per GiB" in out
    assert list(tmp_path.iterdir()) == []  # the work directory is removed


@pytest.mark.slow
def test_bench_server_quick(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bench", "server", "--quick", "--json"])
    result = json.loads(capsys.readouterr().out)
    (step,) = result["steps"]
    assert step["target_per_s"] == 100 and step["sent"] == 100
    # The server's own CPU over the step, by pid: heartbeats per server core-second.
    assert step["server_cpu_s"] > 0 and step["per_core_s"] == step["ok"] / step["server_cpu_s"]
    assert result["fan_out"]["connected"] == result["fan_out"]["delivered"] == 10
    (server,) = result["fan_out"]["per_server"]
    assert server["streams"] == 10 and server["rss_after"] > 0
    assert server["bytes_per_stream"] == (server["rss_after"] - server["rss_before"]) / 10
    assert result["recovery"] is None  # one process: nothing to fail over to
    names = [t["name"] for t in result["targets"]]
    for name in ("heartbeats per server core-second", "memory per SSE stream", "fan-out"):
        assert any(name in n for n in names), names
    assert status == (0 if all(t["met"] for t in result["targets"]) else MISSED_EXIT)
    assert status == MISSED_EXIT, "100 heartbeats/s cannot meet the 3000/s target"


@pytest.mark.slow
def test_bench_server_quick_with_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    """Two server processes on PostgreSQL and Redis, beside the single SQLite process, then
    behind the documented nginx site with one of them killed."""
    status = main(["bench", "server", "--quick", "--replicas", "2", "--json"])
    result = json.loads(capsys.readouterr().out)
    replicated = result["replicas"]
    assert replicated["replicas"] == 2
    (step,) = replicated["steps"]
    assert step["sent"] == 100 and step["errors"] == 0
    assert step["server_cpu_s"] > 0 and step["engine_cores"] > 0  # PostgreSQL and Redis worked
    fan_out = replicated["fan_out"]
    assert fan_out["connected"] == fan_out["delivered"] == 10
    assert [s["streams"] for s in fan_out["per_server"]] == [5, 5]
    assert all(s["bytes_per_stream"] is not None for s in fan_out["per_server"])
    recovery = replicated["recovery"]
    assert recovery["connected"] == 10 and 0 < recovery["on_killed"] < 10
    # Every device of the killed replica came back through nginx, resumed from its
    # Last-Event-ID, with the change published while it was away; none lost elsewhere.
    assert recovery["back"] == recovery["caught_up"] == recovery["resumed"] == recovery["on_killed"]
    assert recovery["lost_elsewhere"] == 0
    assert 0 < recovery["back_s"] <= recovery["caught_up_s"]
    names = [t["name"] for t in result["targets"]]
    assert any(
        "killed replica back" in n and "(PostgreSQL + Redis, 2 replicas)" in n for n in names
    )
    assert status == MISSED_EXIT, "100 heartbeats/s cannot meet the 3000/s target"


@pytest.mark.slow
def test_bench_server_quick_prints_targets(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bench", "server", "--quick"])
    out = capsys.readouterr().out
    _check_run(
        status, out, ["heartbeats per server core-second", "memory per SSE stream", "SSE fan-out"]
    )
    assert re.search(r"^sustained heartbeats/s \(absolute\)", out, re.M)


@pytest.mark.slow
def test_bench_update_quick(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bench", "update", "--quick"])
    _check_run(status, capsys.readouterr().out, ["sse update latency", "polling update latency"])


@pytest.mark.slow
def test_bench_timing_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = tmp_path / "timing.json"
    status = main(["bench", "timing", "--quick", "--json", str(figures)])
    out = capsys.readouterr().out
    _check_run(
        status,
        out,
        ["switch lateness p99", "switch lateness max", "player drift", "static slideshow CPU"],
    )
    assert re.search(r"player \(absolute deadlines\) [+-]\d+\.\d ms/h \(95 % interval", out)
    assert re.search(r"baseline \(chained sleeps\) +[+-]\d+\.\d ms/h", out)
    data = json.loads(figures.read_text())
    assert data["switches"] == 60
    assert data["player_drift"]["low_ms_per_h"] <= data["player_drift"]["high_ms_per_h"]


@pytest.mark.slow
def test_bench_video_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = tmp_path / "video.json"
    status = main(["bench", "video", "--quick", "--json", str(figures)])
    out = capsys.readouterr().out
    kinds = [
        "video→video",
        "video→image",
        "image→video",
        "video→video at end",
        "video→image at end",
        "4K video→video",
        "4K video→image",
        "rotated video→video",
    ]
    measures = ("lateness p99", "black frames", "frozen", "loop busy max", "loop stall max")
    names = [f"{k} {what}" for k in kinds for what in measures]
    presented = [f"{c} frames presented" for c in ("1920x1080_1s.mp4", "3840x2160_1s.mp4")]
    # The 1080p clip on each path: the GL rows on llvmpipe are only checked to have played.
    paths = [
        "h264_1920x1080_1s.mp4 on gl: frames presented",
        "h264_1920x1080_1s.mp4 on software: frames presented",
        "h264_1920x1080_1s.mp4 on software: dropped frames",
        "h264_1920x1080_1s.mp4 on software: CPU",
    ]
    _check_run(status, out, [*names, *presented, "descriptors kept", *paths])
    report = json.loads(figures.read_text())
    assert [(row["clip"], row["renderer"]) for row in report["paths"]] == [
        ("h264_1920x1080_1s.mp4", "gl"),
        ("h264_1920x1080_1s.mp4", "software"),
    ]
    assert [row["kind"] for row in report["switching"]] == kinds
    assert all(row["switches"] == 4 for row in report["switching"])
    results = {row["clip"]: row["result"] for row in report["decoders"]}
    assert results["truncated_h264.mp4"].startswith("error")
    assert results["aac_1s.m4a"].startswith("error")
    assert results["h264_1280x720_1s_rotate90.mp4"] == "plays"  # it aborted the process
    assert all(results[name] == "plays" for name in results if name.endswith((".webm", ".mkv")))
    assert report["leaks"]["switches"] == 30 and report["leaks"]["handles_created"] == 2


def test_a_missed_target_is_exit_status_1_and_says_so() -> None:
    verdict = Verdict()
    verdict.check("lateness p99", 5.0, "<=", 16.7, " ms")
    assert verdict.exit_code() == 0 and verdict.lines() == [
        "[ok] lateness p99: 5 ms (target <= 16.70 ms)"
    ]
    verdict.check("black frames", 1, "==", 0)
    verdict.check("fan-out", None, "<", 2.0, " s")
    assert verdict.exit_code() == MISSED_EXIT
    assert verdict.lines()[1:] == [
        "[MISSED] black frames: 1 (target == 0)",
        "[MISSED] fan-out: not measured (target < 2 s)",
    ]
    assert "2 of 3 targets MISSED" in verdict.report()


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--replicas", "1"], "--replicas needs at least 2"),
        (["--devices", "0"], "--devices must be at least 1, not 0"),
        (["--step-s", "-1"], "--step-s must be above 0, not -1"),
    ],
)
def test_bench_server_refuses_bad_arguments_in_one_line(
    arguments: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "server", *arguments])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"signage bench: {said}") and err.count("\n") == 1, err


def test_a_benchmark_that_cannot_run_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "video", "--quick", "--clips", str(tmp_path)])
    assert stopped.value.code == 2
    assert "signage bench: test clips not found" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_sync_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = tmp_path / "sync.json"
    status = main(["bench", "sync", "--quick", "--json", str(figures)])
    out = capsys.readouterr().out
    _check_run(status, out, ["sync spread p99", "sync spread max", "boundaries on every screen"])
    assert re.search(r"^spread: p50 \d+\.\d\d ms  p99 \d+\.\d\d ms  max \d+\.\d\d ms", out, re.M)
    report = json.loads(figures.read_text())
    assert report["devices"] == 4 and len(report["clocks"]) == 4
    assert report["sync"]["devices"] == 4  # the late screen and the restarted one took part
    assert report["sync"]["spread_ms"]["count"] == report["sync"]["boundaries"] > 0


def _step(rate: int, held: bool) -> Step:
    return Step(
        target_per_s=rate, sent=rate, ok=rate if held else rate // 2, rejected=0, errors=0,
        achieved_per_s=rate if held else rate / 2, p50_ms=1.0, p99_ms=5.0, seconds=1.0,
        server_cpu_s=1.0, server_cores=1.0, per_core_s=rate, engine_cores=0.0,
        load_cores=0.1, load_busiest=0.1,
    )  # fmt: skip


def test_bench_server_steps_rise_past_the_target_to_the_knee() -> None:
    """The steps are not capped below the target: they double until one does not hold, then
    refine above the last that held (they once stopped at 1,600/s, under the 3,000/s target)."""
    knee = 5000

    def run(rate: int) -> Step:
        return _step(rate, rate <= knee)

    tried = [s.target_per_s for s in rates(250, 16000, run)]
    assert tried == [250, 500, 1000, 2000, 4000, 8000, 5000, 6000]
    assert [s.target_per_s for s in rates(250, 1000, run)] == [250, 500, 1000]  # all held
    assert [s.target_per_s for s in rates(250, 16000, lambda r: _step(r, False))] == [250]

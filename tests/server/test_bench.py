"""``signage bench server`` end to end, at a toy size: it must keep working."""

from __future__ import annotations

import json

import pytest

from tools import main


@pytest.mark.slow
def test_bench_server_reports_steps_and_fan_out(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "server", "--devices", "20", "--streams", "10", "--step-s", "1"]
    assert main([*argv, "--max-rate", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (step,) = result["steps"]
    assert step["target_per_s"] == 100 and step["sent"] == 100
    assert step["ok"] + step["rejected"] + step["errors"] == 100
    assert step["ok"] > 0 and step["p99_ms"] >= step["p50_ms"] > 0
    fan_out = result["fan_out"]
    assert fan_out["connected"] == fan_out["delivered"] == 10
    assert fan_out["publish_s"] > 0 and fan_out["fan_out_s"] > 0

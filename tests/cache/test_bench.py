"""``signage bench cache`` runs end to end on a small file (its figures are not asserted).

It needs curl, which ./dev installs (APT_PACKAGES).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import main


def test_bench_cache_prints_both_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "cache", "--size-mb", "2", "--rounds", "1", "--workdir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"^hashing : cache .* ratio \d+\.\d\d", out, re.MULTILINE)
    assert re.search(r"^download: cache .* ratio \d+\.\d\d", out, re.MULTILINE)
    assert "CPU per GiB" in out
    assert list(tmp_path.iterdir()) == []  # the work directory is removed

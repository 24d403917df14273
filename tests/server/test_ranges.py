from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server._assets import parse_range
from server._problems import ApiError


@given(size=st.integers(1, 10_000), data=st.data())
def test_satisfiable_ranges_match_python_slicing(size: int, data: st.DataObject) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    form = data.draw(st.sampled_from(["closed", "open", "suffix"]))
    if form == "closed":
        first = data.draw(st.integers(0, size - 1))
        last = data.draw(st.integers(first, size + 100))
        header, expected = f"bytes={first}-{last}", payload[first : last + 1]
    elif form == "open":
        first = data.draw(st.integers(0, size - 1))
        header, expected = f"bytes={first}-", payload[first:]
    else:
        length = data.draw(st.integers(1, size + 100))
        header, expected = f"bytes=-{length}", payload[-length:]
    span = parse_range(header, size)
    assert span is not None
    start, end = span
    assert payload[start:end] == expected
    assert 0 <= start < end <= size


@given(size=st.integers(1, 10_000), extra=st.integers(0, 100))
def test_ranges_past_the_end_are_416(size: int, extra: int) -> None:
    with pytest.raises(ApiError) as caught:
        parse_range(f"bytes={size + extra}-", size)
    assert caught.value.status == 416
    assert caught.value.headers["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=0-1,4-5", "items=0-1", "bytes=x-y", "bytes=-"])
def test_unsupported_ranges_mean_the_whole_file(header: str) -> None:
    assert parse_range(header, 100) is None


def test_reversed_and_empty_suffix_ranges_are_416() -> None:
    for header in ("bytes=5-2", "bytes=-0"):
        with pytest.raises(ApiError):
            parse_range(header, 100)

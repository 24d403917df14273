from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core import configure_logging, forget_secret, redact, register_secret

TOKEN = "dGhpcy1pcy1hLWRldmljZS10b2tlbg"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = configure_logging("debug", "logfmt", stream=buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)
    forget_secret(TOKEN)


def test_lines_are_key_value_with_fields(stream: io.StringIO) -> None:
    logging.getLogger("player.machine").info(
        "state changed", extra={"fields": {"from": "idle", "to": "loading", "n": 3}}
    )
    line = stream.getvalue().strip()
    assert "level=info logger=player.machine" in line
    assert 'msg="state changed" from=idle to=loading n=3' in line
    assert line.startswith("ts=")


def test_json_format(stream: io.StringIO) -> None:
    buffer = io.StringIO()
    handler = configure_logging("info", "json", stream=buffer)
    try:
        logging.getLogger("x").warning("hello %s", "there", extra={"fields": {"k": [1]}})
    finally:
        logging.getLogger().removeHandler(handler)
    record = json.loads(buffer.getvalue())
    assert record["msg"] == "hello there"
    assert record["k"] == [1]
    assert record["level"] == "warning"


def test_a_registered_token_never_reaches_a_log_line(stream: io.StringIO) -> None:
    register_secret(TOKEN)
    log = logging.getLogger("sync.client")
    log.info("paired with %s", TOKEN)
    log.info("request", extra={"fields": {"headers": {"Authorization": f"Bearer {TOKEN}"}}})
    log.info("credentials", extra={"fields": {"device_token": TOKEN}})
    try:
        raise RuntimeError(f"failed with token {TOKEN}")
    except RuntimeError:
        log.exception("call failed")
    output = stream.getvalue()
    assert output.count("\n") >= 4
    assert TOKEN not in output
    assert "***" in output


def test_unregistered_bearer_and_token_pairs_are_redacted() -> None:
    assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer ***"
    assert redact("GET /x?token=abcdef123 HTTP/1.1") == "GET /x?token=*** HTTP/1.1"
    assert redact('{"device_token": "zzzzzzzzzz"}') == '{"device_token": "***"}'
    assert redact("nothing secret here") == "nothing secret here"

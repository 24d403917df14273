"""Structured log lines on stderr (journald keeps them), with secrets redacted.

Every line is ``key=value`` pairs (logfmt) or one JSON object. Values passed as
``extra={"fields": {...}}`` become keys. Registered secrets and anything that looks like a
bearer token or a ``token=`` pair are replaced by ``***`` before a line is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

REDACTED = "***"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_TOKEN_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:[a-z_]*token|authorization|password|secret)[\"']?\s*[=:]\s*[\"']?)"
        r"(?!\*\*\*|(?i:bearer|basic)\b)[^\s\"',&}]+"
    ),
)


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a log line. Short values are ignored (they would mask noise)."""
    if value and len(value) >= 8:
        with _secrets_lock:
            _secrets.add(value)


def forget_secret(value: str | None) -> None:
    with _secrets_lock:
        _secrets.discard(value or "")


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' ="\\\n\t'):
        return json.dumps(text)
    return text


class StructuredFormatter(logging.Formatter):
    def __init__(self, fmt: str = "logfmt") -> None:
        super().__init__()
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.fmt == "json":
            line = json.dumps(fields, default=str)
        else:
            line = " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())
        return redact(line)


def configure_logging(
    level: str = "info", fmt: str = "logfmt", stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records, structured and redacted, to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(StructuredFormatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old.formatter, StructuredFormatter):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn and httpx log request lines of their own; they go through the same redaction.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler

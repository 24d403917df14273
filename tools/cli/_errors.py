"""How the command line reports a failure: one readable line (a 422 adds one line per invalid
field) saying what happened and what to do, an exit code from the documented table, and
never a traceback on a terminal (``SIGNAGE_DEBUG=1`` shows one; under systemd, where stderr is
the journal, an internal error's traceback precedes its line).

Exit codes (``signage --help`` and docs/install.md list them):

    0    success
    1    failed: the server refused the request, invalid input or configuration, a doctor
         finding, an internal error
    2    wrong command-line arguments
    3    the server cannot be reached, or what answers is not a signage server
    75   the player stopped for a ``restart`` command (player.restart_exit_code)
    130  interrupted (Ctrl+C, SIGINT)
    141  stdout was closed before the output was written (``| head``)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tomllib
import traceback
import unicodedata
from pathlib import Path
from typing import Any

from core import SignageError

EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
EXIT_CODES = """exit codes:
  0    success
  1    failed: the server refused the request, bad input or configuration, a problem found
  2    wrong command-line arguments
  3    the server cannot be reached, or what answers is not a signage server
  75   the player stopped for the server's "restart" command (systemd starts it again)
  130  interrupted (Ctrl+C)
  141  the output was closed early (a pipe into head)

Failures are one line on stderr: what happened and what to do. SIGNAGE_DEBUG=1 adds the
traceback of an internal error."""
# Bidirectional overrides and isolates reorder what a terminal shows; escape them too.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class ExitCodesFormatter(argparse.HelpFormatter):
    """argparse's help, with the exit-code table kept as written (descriptions still wrap)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class CliError(SignageError):
    """A failure the command explains itself; ``exit_code`` from the table above."""

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILED) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def printable(text: str) -> str:
    """``text`` as one safe terminal line: control characters (ESC, BEL, newlines, C1) and
    bidirectional overrides become escapes, so a device name cannot move the cursor, retitle
    the window, fake a line or reorder what is shown."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def read_input(path: Path) -> bytes:
    """The bytes of a file the user named, or a ``CliError`` saying why not."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {_reason(exc)}") from exc


def input_size(path: Path) -> int:
    """The size of a file the user named, after checking it can be read at all."""
    try:
        with path.open("rb") as handle:
            return os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise CliError(f"cannot read {path}: {_reason(exc)}") from exc


def read_document(path: Path) -> Any:
    """A JSON (or, by its suffix, TOML) document the user named."""
    raw = read_input(path)
    try:
        if path.suffix == ".toml":
            return tomllib.loads(raw.decode("utf-8"))
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise CliError(f"{path} is not valid JSON: {exc.msg} at {where}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{path} is not valid TOML: {exc}") from exc


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _in_words(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def _refused(exc: Any) -> list[str]:
    """An ``AdminApiError`` for a person: every invalid field, where the token lives, when
    to retry."""
    if exc.status == 422 and exc.errors:
        head = f"the server refused the request: {len(exc.errors)} invalid field(s):"
        return [head, *(f"  {line}" for line in exc.field_lines())]
    if exc.status == 401:
        return [
            f"the admin token was refused ({exc.code}): pass --token or set SIGNAGE_ADMIN_TOKEN "
            "(the server prints it at its first start and keeps it in DATA_DIR/admin_token)"
        ]
    message = f"the server refused the request ({exc.status} {exc.code})"
    if exc.detail:
        message += f": {exc.detail}"
    if exc.retry_after is not None:
        at = (dt.datetime.now() + dt.timedelta(seconds=exc.retry_after)).strftime("%H:%M")
        if "try again" not in (exc.detail or ""):
            message += f"; try again in {_in_words(exc.retry_after)}"
        message += f" (at {at})"
    return [message]


def describe(exc: BaseException) -> tuple[list[str], int]:
    """The lines to print (without the ``signage:`` prefix) and the exit code for ``exc``."""
    # The admin client's errors can only have been raised if its package was loaded: no
    # need to load the server (FastAPI, SQLAlchemy) just to report a failure.
    server = sys.modules.get("server")
    if isinstance(exc, KeyboardInterrupt):
        return ["interrupted"], EXIT_INTERRUPTED
    if isinstance(exc, CliError):
        return [str(exc)], exc.exit_code
    if server is not None and isinstance(exc, server.ServerUnreachable):
        return [str(exc)], EXIT_UNREACHABLE
    if server is not None and isinstance(exc, server.AdminApiError):
        return _refused(exc), EXIT_FAILED
    if isinstance(exc, SignageError):
        return str(exc).split("\n"), EXIT_FAILED  # ConfigError lists its problems a line each
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return [f"{where}{_reason(exc)}"], EXIT_FAILED
    hint = "this is a bug: please report it"
    if not os.environ.get("SIGNAGE_DEBUG"):
        hint += "; SIGNAGE_DEBUG=1 shows the traceback"
    return [f"internal error: {type(exc).__name__}: {exc} ({hint})"], EXIT_FAILED


def _wants_traceback(exc: BaseException) -> bool:
    """Asked for (SIGNAGE_DEBUG=1), or a bug in a systemd service (INVOCATION_ID is set):
    there stderr is the journal, where the stack is what the next person needs."""
    if os.environ.get("SIGNAGE_DEBUG"):
        return not isinstance(exc, KeyboardInterrupt)
    unexpected = not isinstance(exc, SignageError | OSError | KeyboardInterrupt)
    return unexpected and bool(os.environ.get("INVOCATION_ID"))


def report(exc: BaseException) -> int:
    """Print ``exc`` for a person on stderr; return its exit code."""
    lines, code = describe(exc)
    if _wants_traceback(exc):
        traceback.print_exception(exc, file=sys.stderr)
    first, *rest = (printable(line) for line in lines)
    print(f"signage: {first}", *rest, sep="\n", file=sys.stderr)
    return code

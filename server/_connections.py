"""Slow clients: header and body timeouts on uvicorn's HTTP protocol.

uvicorn closes idle keep-alive connections, but nothing bounds how long a client may take to
send its request: a connection that sends a header line every few seconds (slowloris), or
nothing at all, is held forever. This subclass of uvicorn's protocol (httptools or h11, the
same hooks in both) closes a connection whose request headers are not complete within
``server.header_timeout_s`` of its first byte (or of the connection, for a new one), and one
that stays silent for ``server.body_timeout_s`` while its request body is arriving. Silence
the server causes itself (reading paused because a handler is not consuming the body yet)
does not count. Once a request is complete the app owns the connection: long responses such
as event streams are never cut by these timers.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _base(http: str) -> type[Any]:
    # Imported here: ``import server`` must not load an HTTP parser (tests/test_structure.py).
    if http != "h11":
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        except ImportError:  # httptools is optional; uvicorn then speaks h11
            pass
        else:
            return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


def guarded_protocol(header_timeout_s: float, body_timeout_s: float, http: str = "auto") -> type:
    """uvicorn's HTTP protocol class (``http``: auto, httptools or h11) with the timeouts."""
    base = _base(http)

    class Guarded(base):  # type: ignore[valid-type,misc]
        _timer: asyncio.TimerHandle | None = None

        def _between_requests(self) -> bool:
            cycle = self.cycle
            return cycle is None or bool(cycle.response_complete)

        def _arm(self, delay: float, callback: Any) -> None:
            self._disarm()
            self._timer = self.loop.call_later(delay, callback)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm(header_timeout_s, self._headers_overdue)

        def data_received(self, data: bytes) -> None:
            waiting = self._between_requests()
            super().data_received(data)
            if self.transport.is_closing():
                self._disarm()
            elif self._between_requests():
                # Part of the next request's headers: the deadline runs from its first byte.
                if waiting and self._timer is None:
                    self._arm(header_timeout_s, self._headers_overdue)
            elif self.cycle.more_body:
                self._arm(body_timeout_s, self._body_overdue)
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            self._disarm()  # uvicorn's keep-alive timeout takes over
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _headers_overdue(self) -> None:
            self._timer = None
            if self._between_requests() and not self.transport.is_closing():
                self.transport.close()

        def _body_overdue(self) -> None:
            self._timer = None
            if self._between_requests() or not self.cycle.more_body:
                return
            if self.flow.read_paused:  # the app is not reading yet: not the client's silence
                self._arm(body_timeout_s, self._body_overdue)
            elif not self.transport.is_closing():
                self.transport.close()

    Guarded.__name__ = f"Guarded{base.__name__}"
    Guarded.__qualname__ = Guarded.__name__
    return Guarded

"""Which of a set of assets are verified, and a way to await the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Readiness:
    """A live view over ``shas``: ``ready`` and ``missing`` change as the cache does.

    An asset quarantined after it was ready moves back to ``missing``; a layout is playable
    exactly when ``missing`` is empty.
    """

    def __init__(self, shas: frozenset[str], is_ready: Callable[[str], bool]) -> None:
        self.shas = shas
        self._is_ready = is_ready
        self._changed = asyncio.Event()
        self.refresh()

    @property
    def ready(self) -> frozenset[str]:
        return frozenset(s for s in self.shas if self._is_ready(s))

    @property
    def missing(self) -> frozenset[str]:
        return frozenset(s for s in self.shas if not self._is_ready(s))

    @property
    def complete(self) -> bool:
        return all(self._is_ready(s) for s in self.shas)

    def refresh(self) -> None:
        """Called by the cache when an asset's readiness changed."""
        if self.complete:
            self._changed.set()
        else:
            self._changed.clear()

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (the API)
        """True once every asset is ready; False when ``timeout`` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.complete:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self.complete
        return True

    def __repr__(self) -> str:
        return f"<Readiness ready={len(self.ready)} missing={len(self.missing)}>"

"""How early a layout due at a schedule boundary starts loading: from measured load times.

A boundary switch is presented on the boundary's frame only if the layout is ready by then, so
its preparation starts ``lead`` ahead. The lead follows what loading actually took on this
device: each layout load and each item preparation is recorded (on the media clock), and the
lead of a layout is ``factor`` times its estimated load time, bounded by ``preroll_min_ms`` and
``preroll_max_ms``. A layout loaded before is estimated by its own recent loads; one never
loaded by the sum of its first items' recent preparations (zones load in parallel, but on a
two-core board they compete, so the sum is the safe side); one with an item never prepared
gets the maximum. An estimate is the largest of the last few samples: a slow load is
remembered, one lucky fast load does not shrink the lead.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from core import PlayerConfig
from player._clock import NS_PER_MS
from protocol import Item, Layout, Manifest

SAMPLES = 5  # per key: the estimate is the largest of these
MAX_KEYS = 512  # bounded memory: the least recently measured keys are forgotten


def item_key(item: Item) -> str:
    """What an item's load time depends on: its asset (a file) or, without one, itself."""
    asset = getattr(item, "asset", None)
    return f"asset:{asset}" if isinstance(asset, str) else f"{item.type}:{item.id}"


class LoadTimes:
    """Recent load times per layout and per item; the pre-roll lead derived from them."""

    def __init__(self, config: PlayerConfig) -> None:
        self.min_ns = config.preroll_min_ms * NS_PER_MS
        self.max_ns = config.preroll_max_ms * NS_PER_MS
        self.factor = config.preroll_factor
        self._samples: OrderedDict[str, deque[int]] = OrderedDict()

    def record(self, key: str, load_ns: int) -> None:
        samples = self._samples.pop(key, None) or deque(maxlen=SAMPLES)
        samples.append(max(0, load_ns))
        self._samples[key] = samples
        while len(self._samples) > MAX_KEYS:
            self._samples.popitem(last=False)

    def estimate_ns(self, key: str) -> int | None:
        samples = self._samples.get(key)
        return max(samples) if samples else None

    def layout_estimate_ns(self, manifest: Manifest, layout: Layout, layout_key: str) -> int | None:
        """The layout's own recent loads, else the sum of its first items' preparations."""
        own = self.estimate_ns(layout_key)
        if own is not None:
            return own
        total = 0
        for zone in layout.zones:
            items = manifest.playlist(zone.playlist).items
            if not items:
                continue
            estimate = self.estimate_ns(item_key(items[0]))
            if estimate is None:
                return None
            total += estimate
        return total

    def lead_ns(self, estimate_ns: int | None) -> int:
        if estimate_ns is None:
            return self.max_ns
        return max(self.min_ns, min(self.max_ns, int(self.factor * estimate_ns)))

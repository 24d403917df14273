"""Small value objects of the cache: its limits, its statistics, the states of an object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from core import CacheConfig, CacheError
from protocol import CacheMetrics

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_sha256(sha: str) -> str:
    """``sha`` when it is a lowercase hex sha256; a clear CacheError otherwise.

    Every path under the store is built from a sha, so this is also what keeps a hostile
    manifest from naming ``../../etc/passwd``.
    """
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise CacheError(f"not a sha256 (64 lowercase hex digits): {sha!r}")
    return sha


class ObjectState(StrEnum):
    MISSING = "missing"
    DOWNLOADING = "downloading"
    READY = "ready"
    CORRUPT = "corrupt"


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """How much the cache may use: disk, connections, bandwidth, patience.

    ``max_bytes`` is the budget of verified objects; assets referenced by the current or
    next manifest stay even when they alone exceed it. ``bandwidth_bps`` caps all
    downloads together (None: no cap).
    """

    max_bytes: int = 8 * 1024**3
    parallel: int = 2
    bandwidth_bps: int | None = None
    attempts: int = 8
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    verify_after_start: bool = True
    disk_poll_s: float = 10.0
    min_free_bytes: int = 64 * 1024**2

    def __post_init__(self) -> None:
        problems = []
        if self.max_bytes < 0:
            problems.append(f"max_bytes must be >= 0, got {self.max_bytes}")
        if self.parallel < 1:
            problems.append(f"parallel must be >= 1, got {self.parallel}")
        if self.bandwidth_bps is not None and self.bandwidth_bps < 1:
            problems.append(f"bandwidth_bps must be >= 1 or None, got {self.bandwidth_bps}")
        if self.attempts < 1:
            problems.append(f"attempts must be >= 1, got {self.attempts}")
        if not 0 <= self.retry_base_s <= self.retry_max_s:
            problems.append("retry_base_s must be between 0 and retry_max_s")
        if self.disk_poll_s <= 0:
            problems.append(f"disk_poll_s must be > 0, got {self.disk_poll_s}")
        if self.min_free_bytes < 0:
            problems.append(f"min_free_bytes must be >= 0, got {self.min_free_bytes}")
        if problems:
            raise CacheError("invalid cache limits: " + "; ".join(problems))

    @classmethod
    def from_config(cls, config: CacheConfig) -> Limits:
        return cls(
            max_bytes=config.max_bytes,
            parallel=config.parallel_downloads,
            bandwidth_bps=config.bandwidth_limit_bps,
            verify_after_start=config.verify_after_start,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheStats:
    """The cache at a glance; the same fields as ``protocol.CacheMetrics`` (heartbeats carry it).

    ``ready``: verified objects on disk. ``total``: ``ready`` plus the assets asked for and
    not ready yet. ``errors``: assets asked for whose last fetch failed (or was corrupt).
    """

    ready: int
    total: int
    bytes_used: int
    errors: int
    disk_full: bool

    def as_metrics(self) -> CacheMetrics:
        return CacheMetrics(
            ready=self.ready,
            total=self.total,
            bytes_used=self.bytes_used,
            errors=self.errors,
            disk_full=self.disk_full,
        )

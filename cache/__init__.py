"""The content-addressed, hash-verified asset store."""

from cache._cache import AssetCache
from cache._inspect import ObjectInfo, cache_root, check_objects, list_objects
from cache._lifecycle import CacheBusy
from cache._readiness import Readiness
from cache._store import sha256_file
from cache._types import CacheStats, Limits, ObjectState

__all__ = [
    "AssetCache",
    "CacheBusy",
    "CacheStats",
    "Limits",
    "ObjectInfo",
    "ObjectState",
    "Readiness",
    "cache_root",
    "check_objects",
    "list_objects",
    "sha256_file",
]

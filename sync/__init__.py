"""The device side of the wire: protocol models (shared with the server) and the device client."""

from sync._agent import SyncAgent
from sync._auth import TokenAuth
from sync._client import DeviceClient, MalformedManifest, ManifestFetch, RequestFailed
from sync._commands import CommandRunner, RestartRequested
from sync._heartbeat import HeartbeatLoop, SyncReport
from sync._host import DeviceHost, HostStatus
from sync._impressions import ImpressionRecorder
from sync._metrics import HostSampler, read_temperature
from sync._pairing import pair
from sync._state import Credentials, CredentialStore, ManifestStore, StoredManifest
from sync._store import CommandLedger, ImpressionQueue, SyncDatabase, open_database
from sync._timesync import (
    ClockEstimate,
    ClockEstimator,
    HttpTimeLink,
    MediaTime,
    TimeLink,
    TimeSample,
    TimeSync,
)
from sync._watcher import ManifestWatcher, WatcherTiming

__all__ = [
    "ClockEstimate",
    "ClockEstimator",
    "CommandLedger",
    "CommandRunner",
    "CredentialStore",
    "Credentials",
    "DeviceClient",
    "DeviceHost",
    "HeartbeatLoop",
    "HostSampler",
    "HostStatus",
    "HttpTimeLink",
    "ImpressionQueue",
    "ImpressionRecorder",
    "MalformedManifest",
    "ManifestFetch",
    "ManifestStore",
    "ManifestWatcher",
    "MediaTime",
    "RequestFailed",
    "RestartRequested",
    "StoredManifest",
    "SyncAgent",
    "SyncDatabase",
    "SyncReport",
    "TimeLink",
    "TimeSample",
    "TimeSync",
    "TokenAuth",
    "WatcherTiming",
    "open_database",
    "pair",
    "read_temperature",
]

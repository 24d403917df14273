"""The player daemon: media clock, state machine, scheduler, timeline and their wiring."""

import os

# pygame prints a banner on import unless told not to; a daemon's stdout is not the place.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


from player._assets import AssetSource, DirectoryAssets, sha256_of
from player._clock import NS_PER_MS, NS_PER_S, Clock, MediaClock, VirtualClock
from player._daemon import DeviceAdapter, ImpressionFeed, play_from_server, run_daemon
from player._machine import PlayerState
from player._player import Player
from player._power import PowerController, PowerStatus
from player._preroll import LoadTimes, item_key
from player._presentation import Presentation
from player._resume import content_key
from player._schedule import Resolution, is_active, resolve, resolve_at, share_slots, window
from player._sequencer import Switch, ZonePosition, ZoneSequencer
from player._share import ZonePlan
from player._stalls import LoopStallProbe
from player._timeline import TimelineEvent, TimelineWriter, read_timeline
from player._wall import WallClock, system_clock_synchronised
from player._windows import hour_start_ns

__all__ = [
    "AssetSource",
    "Clock",
    "DeviceAdapter",
    "DirectoryAssets",
    "ImpressionFeed",
    "LoadTimes",
    "LoopStallProbe",
    "MediaClock",
    "NS_PER_MS",
    "NS_PER_S",
    "Player",
    "PlayerState",
    "PowerController",
    "PowerStatus",
    "Presentation",
    "Resolution",
    "Switch",
    "TimelineEvent",
    "TimelineWriter",
    "VirtualClock",
    "WallClock",
    "ZonePlan",
    "ZonePosition",
    "ZoneSequencer",
    "content_key",
    "hour_start_ns",
    "is_active",
    "item_key",
    "play_from_server",
    "read_timeline",
    "resolve",
    "resolve_at",
    "run_daemon",
    "sha256_of",
    "share_slots",
    "system_clock_synchronised",
    "window",
]

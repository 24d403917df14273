"""The player daemon: media clock, state machine, scheduler, timeline and their wiring."""

import os

# pygame prints a banner on import unless told not to; a daemon's stdout is not the place.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


from player._assets import AssetSource, DirectoryAssets, sha256_of
from player._clock import NS_PER_MS, NS_PER_S, Clock, MediaClock, VirtualClock
from player._daemon import DeviceAdapter, ImpressionFeed, play_from_server, run_daemon
from player._machine import PlayerState
from player._player import Player, content_key
from player._preroll import LoadTimes, item_key
from player._presentation import Presentation, Switch, ZoneSequencer
from player._schedule import is_active, resolve, window
from player._sdnotify import SdNotifier, Watchdog
from player._stalls import LoopStallProbe
from player._timeline import TimelineEvent, TimelineWriter, read_timeline
from player._wall import WallClock, system_clock_synchronised

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
    "Presentation",
    "SdNotifier",
    "Switch",
    "TimelineEvent",
    "TimelineWriter",
    "VirtualClock",
    "WallClock",
    "Watchdog",
    "ZoneSequencer",
    "content_key",
    "is_active",
    "item_key",
    "play_from_server",
    "read_timeline",
    "resolve",
    "run_daemon",
    "sha256_of",
    "system_clock_synchronised",
    "window",
]

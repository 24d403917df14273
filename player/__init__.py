"""The player daemon: media clock, state machine, scheduler, timeline and their wiring."""

from player._sdnotify import SdNotifier, Watchdog

__all__ = ["SdNotifier", "Watchdog"]

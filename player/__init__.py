"""The player daemon: media clock, state machine, scheduler, timeline and their wiring."""

__all__: list[str] = []

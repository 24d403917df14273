"""The player's states and the transitions between them (``transitions.AsyncMachine``).

::

    halt (any state) ──> STOPPING ──stopped──> IDLE ──load──> LOADING ──loaded──> PLAYING
                            ▲                                  │  ▲                 │
                            └────────── load_failed ───────────┘  └──── load ───────┘
                                        (nothing playing)          (new content; the old
                                                                    presentation plays on)

Every state accepts ``halt`` (stop) and ``load`` (new content); a reload is ``halt`` then
``load``. (The trigger is not named ``stop``: ``Player.stop()`` is the public method.)
Triggers are queued (one fired inside a callback runs after it); invalid ones are ignored.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from transitions.extensions.asyncio import AsyncMachine

# transitions logs every callback at INFO; the player logs each state change itself.
logging.getLogger("transitions").setLevel(logging.WARNING)


class PlayerState(Enum):
    STOPPING = "stopping"
    IDLE = "idle"
    LOADING = "loading"
    PLAYING = "playing"


TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "halt", "source": "*", "dest": PlayerState.STOPPING},
    {"trigger": "stopped", "source": PlayerState.STOPPING, "dest": PlayerState.IDLE},
    {"trigger": "load", "source": "*", "dest": PlayerState.LOADING},
    {"trigger": "loaded", "source": PlayerState.LOADING, "dest": PlayerState.PLAYING},
    {
        "trigger": "load_failed",
        "source": PlayerState.LOADING,
        "dest": PlayerState.PLAYING,
        "conditions": "has_presentation",
    },
    {"trigger": "load_failed", "source": PlayerState.LOADING, "dest": PlayerState.STOPPING},
]


def build_machine(model: object, initial: PlayerState = PlayerState.IDLE) -> AsyncMachine:
    """Attach the player's machine to ``model`` (callbacks are the model's ``on_enter_*``)."""
    return AsyncMachine(
        model=model,
        states=PlayerState,
        transitions=TRANSITIONS,
        initial=initial,
        queued=True,
        ignore_invalid_triggers=True,
        auto_transitions=False,
        after_state_change="state_changed",
    )

"""The headless simulator (``signage sim``) and the fleet load simulator (``signage fleet``).

Importing this package loads the player, the compositor and the reference server: the command
line imports it inside its handlers only.
"""

from tools.sim._content import DEMO_DIR, load_content
from tools.sim._fleet import FleetOptions, format_fleet_report, require_loopback, run_fleet
from tools.sim._frames import FramePolicy
from tools.sim._run import SimOptions, Simulation, prepare_out
from tools.sim._scenario import check_events_fit, load_scenario, parse_scenario
from tools.sim._seed import GROUP, seed
from tools.sim._summary import distribution, format_table, sync_spread

__all__ = [
    "DEMO_DIR",
    "GROUP",
    "FleetOptions",
    "FramePolicy",
    "SimOptions",
    "Simulation",
    "check_events_fit",
    "distribution",
    "format_fleet_report",
    "format_table",
    "load_content",
    "load_scenario",
    "parse_scenario",
    "prepare_out",
    "require_loopback",
    "run_fleet",
    "seed",
    "sync_spread",
]

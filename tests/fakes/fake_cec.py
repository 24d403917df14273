"""A fake ``cec-ctl`` (and ``xset``) put on PATH: records every call and plays a TV.

``FakeTv(directory)`` writes executable scripts named ``cec-ctl`` and ``xset`` into
``directory`` (put it first on PATH, or name the script's path). They answer like the real
tools do (``pwr-state: on (0x00)`` from ``--give-device-power-status``, ``Monitor is On`` from
``xset q``) from a small JSON state the test changes:

- ``power``: what the TV (or X's DPMS) is in, ``on`` or ``standby``; ``--standby`` and
  ``--image-view-on`` (``xset dpms force off|on``) change it;
- ``answers``: False plays a TV with CEC disabled in its menu: commands are sent (exit 0) but
  it never reports a power status and ignores them;
- ``fail``: every call exits 1 with an error, as a missing or busy adapter does.

``calls()`` returns each call's arguments, in order.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

_SCRIPT = r"""#!{python}
import json, sys
from pathlib import Path
HERE = Path({here!r})
state = json.loads((HERE / "state.json").read_text())
with open(HERE / "calls.log", "a") as log:
    log.write(json.dumps([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\n")
if state["fail"]:
    print("failed to open /dev/cec0: No such device", file=sys.stderr)
    sys.exit(1)
args = sys.argv[1:]
def save():
    (HERE / "state.json").write_text(json.dumps(state))
if Path(sys.argv[0]).name == "xset":
    if args[-3:] == ["dpms", "force", "off"]:
        state["power"] = "standby"; save()
    elif args[-3:] == ["dpms", "force", "on"]:
        state["power"] = "on"; save()
    elif args[-1:] == ["q"]:
        monitor = "On" if state["power"] == "on" else "Off"
        print("DPMS (Energy Star):\n  Standby: 0    Suspend: 0    Off: 0\n  DPMS is Enabled\n"
              f"  Monitor is {{monitor}}")
    sys.exit(0)
if "--playback" in args:
    print("Physical Address           : 1.0.0.0\nLogical Address Mask      : 0x0010")
    sys.exit(0)
if not state["answers"]:
    print("Transmit from Playback Device 1 to TV (4 to 0):\n\tTx, Not Acknowledged (4), Max Retries")
    sys.exit(0)
if "--standby" in args:
    state["power"] = "standby"; save()
elif "--image-view-on" in args:
    state["power"] = "on"; save()
elif "--give-device-power-status" in args:
    code = "0x00" if state["power"] == "on" else "0x01"
    print("Received from TV to Playback Device 1 (0 to 4): REPORT_POWER_STATUS (0x90):")
    print(f"\tpwr-state: {{state['power']}} ({{code}})")
sys.exit(0)
"""


class FakeTv:
    def __init__(self, directory: Path, *, power: str = "on") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = {"power": power, "answers": True, "fail": False}
        self._save()
        script = _SCRIPT.format(python=sys.executable, here=str(self.dir))
        for name in ("cec-ctl", "xset"):
            path = self.dir / name
            path.write_text(script, encoding="utf-8")
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    @property
    def cec_ctl(self) -> str:
        return str(self.dir / "cec-ctl")

    def _save(self) -> None:
        (self.dir / "state.json").write_text(json.dumps(self.state))

    def set(self, **changes: Any) -> None:
        self.state = json.loads((self.dir / "state.json").read_text()) | changes
        self._save()

    @property
    def power(self) -> str:
        return str(json.loads((self.dir / "state.json").read_text())["power"])

    def calls(self) -> list[list[str]]:
        log = self.dir / "calls.log"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

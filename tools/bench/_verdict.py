"""Targets and verdicts, one policy for every ``signage bench``.

A benchmark measures figures; those that have a target (DESIGN section 14) are checked here:
each is printed with its target next to it and ``ok`` or ``MISSED``, and the command exits
``MISSED_EXIT`` (1) when any target was missed, 0 when all were met. A benchmark that cannot
run at all (no curl, no test clips, a server that does not start) exits ``FAILED_EXIT`` (2),
as a bad argument does, with one readable line. A figure measured on a shared or busy machine
is what it is: the verdict does not excuse it, the report says the load (``load_note``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NoReturn

Op = Literal["<=", "<", ">=", ">", "=="]
MISSED_EXIT = 1
FAILED_EXIT = 2


@dataclass(frozen=True)
class Check:
    """One figure against its target: ``value op limit`` holds when the target is met."""

    name: str
    value: float | None  # None: could not be measured (the target is missed)
    op: Op
    limit: float
    unit: str = ""

    @property
    def met(self) -> bool:
        value = self.value
        if value is None:
            return False
        return {
            "<=": value <= self.limit,
            "<": value < self.limit,
            ">=": value >= self.limit,
            ">": value > self.limit,
            "==": value == self.limit,
        }[self.op]

    def line(self) -> str:
        shown = "not measured" if self.value is None else f"{_number(self.value)}{self.unit}"
        target = f"{self.op} {_number(self.limit)}{self.unit}"
        return f"[{'ok' if self.met else 'MISSED'}] {self.name}: {shown} (target {target})"


@dataclass
class Verdict:
    """The checks of one benchmark run."""

    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, value: float | None, op: Op, limit: float, unit: str = "") -> Check:
        added = Check(name, value, op, limit, unit)
        self.checks.append(added)
        return added

    @property
    def met(self) -> bool:
        return all(c.met for c in self.checks)

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]

    def report(self) -> str:
        missed = sum(1 for c in self.checks if not c.met)
        summary = (
            f"all {len(self.checks)} targets met"
            if not missed
            else f"{missed} of {len(self.checks)} targets MISSED"
        )
        return "\n".join([*self.lines(), f"{summary} ({load_note()})"])

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(c) | {"met": c.met} for c in self.checks]

    def exit_code(self) -> int:
        return 0 if self.met else MISSED_EXIT


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def load_note() -> str:
    """The machine's load while measuring: figures from a busy machine are read with it."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} cores"


def cannot_run(message: str) -> NoReturn:
    """The benchmark cannot run here: one line on stderr, exit status 2."""
    print(f"signage bench: {message}", file=sys.stderr)
    raise SystemExit(FAILED_EXIT)

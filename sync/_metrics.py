"""Host metrics for the heartbeat: CPU over the last interval (not since boot), memory, disk,
temperature where the board has a sensor, uptime."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
# Sensor names seen on Raspberry Pi (cpu_thermal), x86 (coretemp, k10temp) and ACPI boards.
_SENSORS = ("cpu_thermal", "coretemp", "k10temp", "soc_thermal", "acpitz")


@dataclass(frozen=True)
class HostSample:
    cpu_percent: float
    memory_percent: float
    memory_used_bytes: int
    disk_free_bytes: int
    disk_total_bytes: int
    temperature_c: float | None
    uptime_s: float
    python_version: str


def read_temperature(
    sensors: Callable[[], dict[str, list[Any]]] | None = None, thermal_zone: Path = THERMAL_ZONE
) -> float | None:
    """The SoC/CPU temperature in °C, or None when the board has no sensor."""
    reader = sensors or getattr(psutil, "sensors_temperatures", None)
    if reader is not None:
        try:
            found = reader()
        except (OSError, RuntimeError):
            found = {}
        for name in (*_SENSORS, *sorted(found)):
            entries = found.get(name) or []
            if entries:
                return float(entries[0].current)
    try:
        return int(thermal_zone.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def _busy_and_total(times: Any) -> tuple[float, float]:
    total = float(sum(times))
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return total - idle, total


class HostSampler:
    """Each ``sample()`` reports CPU use since the previous one: the heartbeat interval."""

    def __init__(
        self,
        disk_path: Path,
        *,
        cpu_times: Callable[[], Any] = psutil.cpu_times,
        temperature: Callable[[], float | None] = read_temperature,
    ) -> None:
        self.disk_path = Path(disk_path)
        self._cpu_times = cpu_times
        self._temperature = temperature
        self._last = _busy_and_total(cpu_times())

    def _cpu_percent(self) -> float:
        busy, total = _busy_and_total(self._cpu_times())
        last_busy, last_total = self._last
        self._last = (busy, total)
        elapsed = total - last_total
        if elapsed <= 0:
            return 0.0
        return round(max(0.0, min(100.0, 100.0 * (busy - last_busy) / elapsed)), 1)

    def sample(self) -> HostSample:
        memory = psutil.virtual_memory()
        path = self.disk_path if self.disk_path.exists() else Path("/")
        disk = psutil.disk_usage(str(path))
        return HostSample(
            cpu_percent=self._cpu_percent(),
            memory_percent=float(memory.percent),
            memory_used_bytes=int(memory.total - memory.available),
            disk_free_bytes=int(disk.free),
            disk_total_bytes=int(disk.total),
            temperature_c=self._temperature(),
            uptime_s=max(0.0, time.time() - psutil.boot_time()),
            python_version=platform.python_version(),
        )

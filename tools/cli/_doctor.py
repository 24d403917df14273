"""``signage doctor``: check that this machine can play, and say what to fix."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core import ConfigError, Settings, state_dir
from tools.cli._common import add_config_options, load_from_args
from tools.cli._errors import printable

if TYPE_CHECKING:  # httpx and the checks load only when the command runs
    from tools.cli._checks import Finding

# The installed service's state directory (StateDirectory=signage): what the doctor looks at
# when run from a shell, where $STATE_DIRECTORY is unset.
SERVICE_STATE_DIR = Path("/var/lib/signage")


def _state_dir(args: argparse.Namespace, settings: Settings) -> Path:
    implicit = args.data_dir is None and settings.data_dir is None
    if implicit and "STATE_DIRECTORY" not in os.environ and SERVICE_STATE_DIR.is_dir():
        return SERVICE_STATE_DIR
    return state_dir(settings.data_dir)


def _run(args: argparse.Namespace) -> int:
    from tools.cli._checks import Finding, Probe, Status, run_checks

    findings: list[Finding] = []
    try:
        settings = load_from_args(args)
    except ConfigError as exc:
        problems = "; ".join(exc.problems)
        findings.append(
            Finding(
                "config",
                Status.FAIL,
                f"invalid configuration: {problems}",
                "fix the file (signage config check FILE lists every problem)",
            )
        )
        settings = Settings(data_dir=args.data_dir)  # keep --data-dir; defaults for the rest
    state = _state_dir(args, settings)
    print(f"signage doctor: state directory {state}")
    findings += run_checks(Probe(settings=settings, state_dir=state))
    failures = print_findings(findings)
    return 1 if failures else 0


def print_findings(findings: Sequence[Finding]) -> int:
    """Print one line per finding and its fix; the number of failures."""
    from tools.cli._checks import Status

    failures = warnings = 0
    for finding in findings:
        print(printable(f"  {finding.status.value:<5} {finding.check:<12} {finding.detail}"))
        if finding.fix and finding.status is not Status.OK:
            print(printable(f"  {'':<5} {'':<12} fix: {finding.fix}"))
        failures += finding.status is Status.FAIL
        warnings += finding.status is Status.WARN
    if failures:
        print(f"{failures} problem(s) to fix, {warnings} warning(s).")
    else:
        print(f"ready to play ({warnings} warning(s)).")
    return failures


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check that this machine can play, and say what to fix",
        description="Check the display (KMSDRM, X11 or Wayland), the OpenGL the GL path gets "
        "(vendor, renderer, version; a software rasteriser such as llvmpipe warns), on a "
        "Raspberry Pi the KMS overlay and GPU device nodes, the service user's video and render "
        "groups, the GL packages, libmpv, the bundled fonts, free space of the state directory, "
        "clock synchronization, the server's /healthz, the device credentials and the systemd "
        "service. Prints what to fix; exit 1 when something is wrong.",
    )
    add_config_options(parser)
    parser.set_defaults(handler=_run)

"""The environment's health, kept where a container health check can read it.

The guard writes a small JSON state file when health is first known and whenever it changes
(never per invocation). ``safehandler health`` reads it: exit 0 healthy, 1 unhealthy, 2 no state.
The path is ``SAFEHANDLER_HEALTH_FILE``, default ``/tmp/safehandler-health.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ._constants import HEALTH_FILE
from ._redact import redact_text
from ._warn import warn

__all__ = ["HealthState", "publish", "read_state", "state_path", "write_state"]


class HealthState(NamedTuple):
    healthy: bool
    reasons: tuple[str, ...]
    pid: int
    invocation: int
    updated: float  # time.time()

    def __str__(self) -> str:
        if self.healthy:
            return f"healthy (pid {self.pid}, invocation {self.invocation:,})"
        return f"UNHEALTHY since invocation {self.invocation:,} (pid {self.pid}): " + "; ".join(
            self.reasons
        )


def state_path(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get(HEALTH_FILE):
        return environ[HEALTH_FILE]
    return os.path.join(_temporary_directory(environ), "safehandler-health.json")


def _temporary_directory(environ: Mapping[str, str]) -> str:
    # tempfile.gettempdir() in its common cases: importing tempfile costs 6 ms of cold start
    for name in ("TMPDIR", "TEMP", "TMP"):
        if environ.get(name):
            return environ[name]
    if os.path.isdir("/tmp"):  # noqa: S108 - the default location, as tempfile would find it
        return "/tmp"  # noqa: S108
    import tempfile  # elsewhere (Windows), let it search

    return tempfile.gettempdir()


def write_state(healthy: bool, reasons: Sequence[str], invocation: int) -> None:
    """Atomically replace the state file (a reader never sees half of it)."""
    path = state_path()
    # the reasons are figures today; redacted all the same, as they leave the process here
    reasons = tuple(redact_text(str(reason)) for reason in reasons)
    state = HealthState(healthy, reasons, os.getpid(), invocation, time.time())
    scratch = f"{path}.{os.getpid()}.tmp"
    with open(scratch, "w", encoding="utf-8") as out:
        json.dump(state._asdict(), out)
    os.replace(scratch, path)


def read_state(path: str | None = None) -> HealthState | None:
    try:
        with open(path or state_path(), encoding="utf-8") as state_file:
            data: dict[str, Any] = json.load(state_file)
        return HealthState(
            bool(data["healthy"]),
            tuple(data["reasons"]),
            int(data["pid"]),
            int(data["invocation"]),
            float(data["updated"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def publish(*, healthy: bool, reasons: Sequence[str], invocation: int) -> None:
    """Write the state ``safehandler health`` reads; a courtesy that must never fail a call."""
    if os.environ.get(HEALTH_FILE) == "off":
        return
    try:
        write_state(healthy, reasons, invocation)
    except OSError as exc:
        warn("safehandler: cannot write the health state: %r", exc)

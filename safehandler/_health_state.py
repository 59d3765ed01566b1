"""The environment's health, kept where a container health check can read it: one file per
process.

The guard writes a small JSON state file when health is first known and whenever it changes
(never per invocation). ``safehandler health`` reads them: exit 0 healthy, 1 unhealthy, 2 no
state. The base path is ``SAFEHANDLER_HEALTH_FILE``, default ``/tmp/safehandler-health.json``;
each process writes its own ``<stem>.<pid>.json`` beside it (two workers of one container,
a restarted runtime next to the one it replaced, never overwrite each other's), and the
command ignores the files of processes that are gone and reports the worst live one.

Written safely in a shared ``/tmp``: the new state goes to a scratch file created in the same
directory as ``tempfile.mkstemp`` creates one (``O_CREAT | O_EXCL | O_NOFOLLOW``, a random
name nobody can plant in advance, mode 0600; done here with ``os.open``, as importing
``tempfile`` costs the first invocation 6 ms), then ``os.replace`` puts it in place, which
replaces a planted symlink instead of following it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

from ._constants import HEALTH_FILE
from ._redact import redact_text
from ._suppress import suppress
from ._warn import warn

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from ._tuple import NamedTuple

__all__ = [
    "HealthState",
    "live_states",
    "paused",
    "process_path",
    "publish",
    "read_state",
    "state_path",
    "worst_live_state",
    "write_state",
]


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
    """The base path: each process writes ``process_path(base, pid)``."""
    environ = os.environ if environ is None else environ
    if environ.get(HEALTH_FILE):
        return environ[HEALTH_FILE]
    return os.path.join(_temporary_directory(environ), "safehandler-health.json")


def process_path(base: str, pid: int) -> str:
    stem, suffix = os.path.splitext(base)
    return f"{stem}.{pid}{suffix or '.json'}"


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
    """Atomically replace this process's state file (a reader never sees half of it)."""
    import json  # 1.6 ms of cold start: loaded when a state is first written

    path = process_path(state_path(), os.getpid())
    # the reasons are figures today; redacted all the same, as they leave the process here
    reasons = tuple(redact_text(str(reason)) for reason in reasons)
    state = HealthState(healthy, reasons, os.getpid(), invocation, time.time())
    fd, scratch = _scratch_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state._asdict(), out)
        os.replace(scratch, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(scratch)
        raise


_SCRATCH_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _scratch_beside(path: str) -> tuple[int, str]:
    """A new file in ``path``'s directory, as ``tempfile.mkstemp`` makes one."""
    directory, name = os.path.split(path)
    for _ in range(100):  # a random 64-bit name: taken only if someone is guessing
        scratch = os.path.join(directory, f".{name}.{os.urandom(8).hex()}.tmp")
        try:
            return os.open(scratch, _SCRATCH_FLAGS, 0o600), scratch
        except FileExistsError:
            continue
    raise FileExistsError(f"no free scratch name beside {path}")


def read_state(path: str) -> HealthState | None:
    """One state file, or None if it is missing or not one. Never follows a symlink."""
    import json

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, encoding="utf-8") as state_file:
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


def live_states(base: str | None = None) -> list[HealthState]:
    """The states of the processes that are still running, from their files beside ``base``."""
    base = base or state_path()
    directory, name = os.path.split(base)
    stem, suffix = os.path.splitext(name)
    suffix = suffix or ".json"
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    states = []
    for entry in names:
        pid_text = entry[len(stem) + 1 : -len(suffix)]
        if not (entry.startswith(f"{stem}.") and entry.endswith(suffix) and pid_text.isdigit()):
            continue
        state = read_state(os.path.join(directory, entry))
        if state is not None and state.pid == int(pid_text) and _alive(state.pid):
            states.append(state)
    return states


def worst_live_state(base: str | None = None) -> HealthState | None:
    """The live process in the worst state: unhealthy first, the longest unhealthy first."""
    states = live_states(base)
    if not states:
        return None
    return min(states, key=lambda s: (s.healthy, s.invocation if not s.healthy else 0, s.pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's, but alive
    return True


_pause = [0]


class _Paused:
    """``paused()``'s block (a class: ``contextlib`` costs 1.4 ms of cold start)."""

    def __enter__(self) -> None:
        _pause[0] += 1

    def __exit__(self, *exc_info: object) -> None:
        _pause[0] -= 1


def paused() -> _Paused:
    """No state written meanwhile: a soak's handler is not the environment's."""
    return _Paused()


def publish(*, healthy: bool, reasons: Sequence[str], invocation: int) -> None:
    """Write the state ``safehandler health`` reads; a courtesy that must never fail a call."""
    if _pause[0] or os.environ.get(HEALTH_FILE) == "off":
        return
    try:
        write_state(healthy, reasons, invocation)
    except OSError as exc:
        warn("safehandler: cannot write the health state: %r", exc)

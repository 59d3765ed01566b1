"""Child processes started during an invocation and still running, or left as zombies.

Seen only when an invocation started one (``subprocess.Popen``, ``os.fork``,
``os.posix_spawn``, ``os.system`` audit events): then psutil lists the children created since.
A child still running resumes with the frozen environment; a zombie holds its process slot
until someone waits for it.
"""

from __future__ import annotations

import time

from .._records import NO_CHANGE, Delta, Resource
from .._redact import redact
from .._scope import Scope, others_live
from ._protocol import Probe

__all__ = ["ProcessProbe"]


class ProcessProbe(Probe):
    name = "processes"

    def __init__(self) -> None:
        self.retained: dict[int, Resource] = {}
        self.seen: set[int] = set()  # children judged once: not new again

    @property
    def holding(self) -> bool:
        return bool(self.retained)

    # Nothing to count cheaply: the audit events say when to look. (int() is 0, called in C:
    # no Python frame per invocation.)
    snapshot = staticmethod(int)

    def diff(self, before: int | None, after: int, scope: Scope, invocation: int) -> Delta:
        started = [c for c in scope.creations if c.kind == "process"]
        if (
            started
            and scope.overlapped
            and any(c.kind == "process" for other in others_live(scope) for c in other.creations)
        ):
            # children are the process's: with another invocation starting some meanwhile,
            # which are whose cannot be told; they are judged when their owner ends alone
            started = []
        if not started and not self.retained:
            return NO_CHANGE
        import psutil

        children = {child.pid: child for child in psutil.Process().children(recursive=False)}
        removed = [
            self.retained.pop(pid)
            for pid in list(self.retained)
            if pid not in children or _status(children[pid]) in ("dead", None)
        ]
        if not started:
            return Delta([], removed)
        # psutil derives start times from the boot time, which /proc gives in whole seconds
        since = min(c.ref for c in started) - 1.0
        site = started[0].site
        added = []
        for pid, child in children.items():
            if pid in self.seen or _created(child) < since:
                continue
            self.seen.add(pid)
            status = _status(child)
            if status in ("dead", None):
                continue
            state = "a zombie nobody waited for" if status == "zombie" else "still running"
            res = Resource(
                "process",
                pid,
                "child process",
                f"pid {pid} `{_command(child)}` {state}",
                site,
                invocation,
            )
            self.retained[pid] = res
            added.append(res)
        return Delta(added, removed)


def _status(child: object) -> str | None:
    try:
        return str(child.status())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - gone meanwhile
        return None


def _created(child: object) -> float:
    try:
        return float(child.create_time())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - gone meanwhile
        return 0.0


def _command(child: object) -> str:
    try:
        words = _cmdline(child) or [child.name()]  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a zombie has no command line to read
        return "?"
    # redacted before the cut: cut first, a token's tail would no longer read as a token
    text = redact(" ".join(words))
    return text if len(text) <= 60 else text[:57] + "..."


def _cmdline(child: object) -> list[str]:
    # Popen returns once exec has closed the child's CLOEXEC pipe, which the kernel does before
    # it maps the new arguments: for a moment /proc/<pid>/cmdline reads empty. Wait that out.
    for _ in range(50):
        words: list[str] = child.cmdline()  # type: ignore[attr-defined]
        if words:
            return words
        time.sleep(0.001)
    return []

"""Resident memory after each invocation, read cheaply.

RSS is read from ``/proc/self/statm`` through a descriptor opened once (a ``pread`` costs about
a microsecond, psutil about ten). The limit it is judged against is the health module's.
"""

from __future__ import annotations

import os

from .._records import NO_CHANGE, Delta
from .._scope import Scope
from .._sites import PACKAGE_DIR, is_user_code
from ._protocol import Probe

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["TRACE_FRAMES", "MemoryProbe", "growth_sites", "rss"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryProbe(Probe):
    name = "memory"
    stat = "rss"
    counts_before = False  # judged on the RSS after each invocation (verdicts.MemoryTrend)

    def __init__(self) -> None:
        rss()  # opens the statm descriptor now, at init, where it is baseline
        self.snapshot = rss  # type: ignore[method-assign] # the hot path: no frame around it

    def snapshot(self) -> int:
        """Resident set size in bytes."""
        return rss()

    def diff(self, before: int | None, after: int, scope: Scope, invocation: int) -> Delta:
        return NO_CHANGE  # memory is judged as a trend (verdicts.MemoryTrend), not per resource


_statm: int | None = None  # one descriptor for the process, opened on first use


def rss() -> int:
    """Resident set size in bytes: one pread of /proc/self/statm, or psutil without /proc."""
    global _statm  # noqa: PLW0603 - shared by every guard, opened once
    if _statm is None:
        try:
            _statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            import psutil

            return int(psutil.Process().memory_info().rss)
    return int(os.pread(_statm, 128, 0).split()[1]) * _PAGE


def _forget_parents_statm() -> None:
    # "self" was resolved when the descriptor was opened: in a forked child it is the parent
    global _statm  # noqa: PLW0603 - shared by every guard, opened once
    if _statm is not None:
        os.close(_statm)
        _statm = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_statm)


# -- what allocates: tracemalloc, in soaks only (it slows every allocation) -----------------

TRACE_FRAMES = 64  # deep enough to reach the user's line from inside a library's allocation


def growth_sites(
    before: Any, after: Any, top: int = 3, at_least: int = 64 * 1024
) -> list[tuple[str, int, int]]:
    """The lines whose allocations grew most between two ``tracemalloc`` snapshots:
    ``(filename, line, bytes)``, largest first. A block allocated inside a library is told at
    the first line of user code that led to it (``boto3.client(...)``, not botocore's
    loader); blocks with no user frame at their innermost library frame. Lines that grew by
    less than ``at_least`` bytes are left out: growth that small is not what fills memory."""
    grown: dict[tuple[str, int], int] = {}
    for stat in after.compare_to(before, "traceback"):
        if stat.size_diff <= 0:
            continue
        frames = list(stat.traceback)  # oldest first
        own = [f for f in frames if not f.filename.startswith(PACKAGE_DIR)]
        users = [f for f in own if is_user_code(f.filename)]
        frame = users[-1] if users else (own[-1] if own else frames[-1])
        key = (frame.filename, frame.lineno)
        grown[key] = grown.get(key, 0) + stat.size_diff
    ranked = sorted(
        ((key, size) for key, size in grown.items() if size >= at_least), key=lambda item: -item[1]
    )[:top]
    return [(filename, lineno, size) for (filename, lineno), size in ranked]

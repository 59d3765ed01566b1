"""Resident memory per invocation, and the limit it is measured against.

RSS is read from ``/proc/self/statm`` through a descriptor opened once (a ``pread`` costs about
a microsecond, psutil about ten). The limit is, in order: the configured value,
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, the cgroup limit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .. import _constants as env
from ..report import Resource
from ..sites import Creation
from . import NO_CHANGE, Delta

__all__ = ["MemoryProbe", "memory_limit_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CGROUP_FILES = (
    "/sys/fs/cgroup/memory.max",  # cgroup v2
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # cgroup v1
)
_NO_LIMIT = 1 << 60  # cgroup v1 reports "unlimited" as a huge number


class MemoryProbe:
    name = "memory"
    counts_before = False  # judged on the RSS after each invocation (policy.MemoryTrend)
    holding = False

    def __init__(self) -> None:
        rss()  # opens the statm descriptor now, at init, where it is baseline

    def snapshot(self) -> int:
        """Resident set size in bytes."""
        return rss()

    def start(self, count: int) -> list[Resource]:
        return []

    def diff(
        self, before: int, after: int, creations: Sequence[Creation], invocation: int
    ) -> Delta:
        return NO_CHANGE  # memory is judged as a trend (policy.MemoryTrend), not per resource


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


def memory_limit_bytes(
    configured_mb: int | None, environ: Mapping[str, str] | None = None
) -> int | None:
    if configured_mb is not None:
        return configured_mb * 1024 * 1024
    environ = os.environ if environ is None else environ
    lambda_mb = environ.get(env.LAMBDA_MEMORY_SIZE, "").strip()
    if lambda_mb.isdigit() and int(lambda_mb) > 0:
        return int(lambda_mb) * 1024 * 1024
    for path in _CGROUP_FILES:
        try:
            with open(path) as limit_file:
                text = limit_file.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < _NO_LIMIT:
            return int(text)
    return None

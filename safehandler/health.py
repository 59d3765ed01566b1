"""Health: resource use against the limits, and whether a recycle is due.

Open fds are compared with the soft ``RLIMIT_NOFILE`` (``fd_threshold``), RSS with the memory
limit (``memory_threshold``): in order, the configured ``memory_limit_mb``,
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, the cgroup limit. Crossing one marks the environment
unhealthy, once: the invocation finishes normally and the recycle happens between invocations.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from typing import NamedTuple

from . import _constants as env
from .policy import Policy

__all__ = ["Health", "HealthMonitor", "judge_health", "memory_limit_bytes"]

_CGROUP_FILES = (
    "/sys/fs/cgroup/memory.max",  # cgroup v2
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # cgroup v1
)
_NO_LIMIT = 1 << 60  # cgroup v1 reports "unlimited" as a huge number


class Health(NamedTuple):
    """Resource use after an invocation against the limits."""

    fds: int
    fd_limit: int | None
    rss: int | None
    memory_limit: int | None
    reasons: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.reasons


def judge_health(
    *,
    fds: int | None,
    fd_limit: int | None,
    fd_threshold: float,
    rss: int | None,
    memory_limit: int | None,
    memory_threshold: float,
) -> Health:
    reasons = []
    if fds is not None and fd_limit and fds > fd_threshold * fd_limit:
        reasons.append(f"{fds} open fds > {fd_threshold:.0%} of RLIMIT_NOFILE {fd_limit}")
    if rss is not None and memory_limit and rss > memory_threshold * memory_limit:
        reasons.append(
            f"RSS {rss / 2**20:.0f} MiB > {memory_threshold:.0%} of the "
            f"{memory_limit / 2**20:.0f} MiB memory limit"
        )
    return Health(fds or 0, fd_limit, rss, memory_limit, tuple(reasons))


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


def _soft_fd_limit() -> int | None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


class HealthMonitor:
    """Health after each invocation, judged cheaply: two comparisons unless a limit is near.

    The fd limit is read again only when the fd count moved (a handler may raise it).
    """

    def __init__(self, policy: Policy, memory_limit: int | None) -> None:
        self.policy = policy
        self.memory_limit = memory_limit
        self.unhealthy_since: int | None = None
        self.last_use: tuple[int | None, int | None] = (None, None)  # fds, RSS
        self._fd_limit: int | None = None
        self._fds_at_last_check: int | None = -1
        self._fd_cap: float | None = None  # above these, unhealthy
        self._memory_cap = policy.memory_threshold * memory_limit if memory_limit else None

    def judge(self, fds: int | None, rss: int | None) -> Health:
        return judge_health(
            fds=fds,
            fd_limit=self._fd_limit if fds is not None else None,
            fd_threshold=self.policy.fd_threshold,
            rss=rss,
            memory_limit=self.memory_limit,
            memory_threshold=self.policy.memory_threshold,
        )

    def check(self, invocation: int, fds: int | None, rss: int | None) -> Health | None:
        """The health that just turned bad at this invocation, or None."""
        self.last_use = (fds, rss)
        if self.unhealthy_since is not None:
            return None  # judged: the environment is on its way out
        if fds != self._fds_at_last_check:
            self._fds_at_last_check = fds
            self._fd_limit = _soft_fd_limit()
            self._fd_cap = self.policy.fd_threshold * self._fd_limit if self._fd_limit else None
        over_fds = fds is not None and self._fd_cap is not None and fds > self._fd_cap
        over_memory = rss is not None and self._memory_cap is not None and rss > self._memory_cap
        if not (over_fds or over_memory):
            return None
        self.unhealthy_since = invocation
        return self.judge(fds, rss)

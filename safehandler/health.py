"""Health: resource use against the limits, and whether a recycle can help.

Open fds are compared with the soft ``RLIMIT_NOFILE`` (``fd_threshold``), RSS with the memory
limit (``memory_threshold``): in order, the configured ``memory_limit_mb``,
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, the cgroup limit.

Crossing a threshold asks for a recycle only if one can help, judged against what the
process used after its first invocation (init and lazy first use: the *baseline*, which a
fresh runtime pays again):

- the baseline must leave room below the threshold, at least ``MIN_HEADROOM`` of it (a function
  that holds 100 of its 128 MB from init is not helped by a restart: it would cross again at
  once), so a recycle always undoes growth of at least that much;
- back-off: each generation judges its own baseline, so when a recycle did not help (the fresh
  runtime starts as close to the threshold as the old one ended) that generation is not
  recycled again: one line says so;
- spacing: after a recycle, the next one waits for at least ``RECYCLE_SPACING`` invocations
  (and for renewed growth, by the first rule).

Crossing one when a recycle cannot help is told once (``recyclable`` False); the environment
is not marked unhealthy for it. Otherwise the environment is marked unhealthy, once: the
invocation finishes normally and the recycle happens between invocations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import _constants as env
from ._records import PastRecycle
from .policy import Policy

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from ._tuple import NamedTuple

__all__ = [
    "MIN_HEADROOM",
    "RECYCLE_SPACING",
    "Health",
    "HealthMonitor",
    "judge_health",
    "memory_limit_bytes",
]

MIN_HEADROOM = 0.1  # of the threshold: the room a fresh runtime must have below it
RECYCLE_SPACING = 20  # invocations: never two recycles closer than this

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
    recyclable: bool = True  # False: near the limit, but a recycle would not help

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
    """The limit one process's RSS is judged against: the configured one as it is, else the
    function's (or the cgroup's), shared out on Lambda Managed Instances, where
    ``AWS_LAMBDA_MAX_CONCURRENCY`` worker processes (awslambdaric forks that many) share it."""
    if configured_mb is not None:
        return configured_mb * 1024 * 1024
    environ = os.environ if environ is None else environ
    whole = _whole_memory_limit(environ)
    workers = environ.get(env.LAMBDA_MAX_CONCURRENCY, "").strip()
    if whole is not None and workers.isdigit() and int(workers) > 1:
        return whole // int(workers)
    return whole


def _whole_memory_limit(environ: Mapping[str, str]) -> int | None:
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
    import resource  # an extension module: loaded with the first limit read

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


class HealthMonitor:
    """Health after each invocation, judged cheaply: two comparisons unless a limit is near.

    The fd limit is read again only when the fd count moved (a handler may raise it).
    """

    def __init__(
        self, policy: Policy, memory_limit: int | None, previous: PastRecycle | None = None
    ) -> None:
        self.policy = policy
        self.memory_limit = memory_limit
        self.previous = previous
        self.unhealthy_since: int | None = None
        self.hopeless_told = False  # the one line saying a recycle would not help
        self.baseline: tuple[int | None, int | None] | None = None  # fds, RSS
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
        if self.baseline is None:
            self.baseline = (fds, rss)
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
        return self._judge_recycle(invocation, fds, rss, over_fds, over_memory)

    def _judge_recycle(
        self, invocation: int, fds: int | None, rss: int | None, over_fds: bool, over_memory: bool
    ) -> Health | None:
        assert self.baseline is not None
        base_fds, base_rss = self.baseline
        why_not: list[str] = []
        helps = False
        for over, cap, base, unit in (
            (over_fds, self._fd_cap, base_fds, "open fds"),
            (over_memory, self._memory_cap, base_rss, "RSS"),
        ):
            if not over or cap is None or base is None:
                continue
            if cap - base < MIN_HEADROOM * cap:  # a fresh runtime would start about here
                why_not.append(f"{_amount(base, unit)} after init, too close to the threshold")
            else:
                helps = True
        if helps:
            if self.previous is not None and invocation < RECYCLE_SPACING:
                return None  # judged again after each invocation until the spacing is kept
            self.unhealthy_since = invocation
            return self.judge(fds, rss)
        if self.hopeless_told:
            return None
        self.hopeless_told = True
        health = self.judge(fds, rss)
        reasons = tuple(
            f"{reason}; a recycle would not help: {'; '.join(why_not)}" for reason in health.reasons
        )
        return health._replace(reasons=reasons, recyclable=False)


def _amount(value: int, unit: str) -> str:
    return f"{value} open fds" if unit == "open fds" else f"RSS {value / 2**20:.0f} MiB"

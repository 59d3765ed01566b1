"""The engine around one invocation: snapshot, call, snapshot, and details only on change.

Fail open: a probe that raises is switched off with one warning, and nothing the engine does
can change what the handler returns or raises. Only a strict policy raises, and only from the
decorator, after the handler has returned normally.
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from . import health, recycle, runtime
from ._constants import HEALTH_FILE, LOGGER_NAME
from .config import Policy
from .policy import Health, LeakTracker, MemoryTrend, judge_health
from .probes import Probe
from .probes.db import DbProbe
from .probes.db import registry as db_registry
from .probes.fds import FdProbe
from .probes.globals import IMMEDIATE_NOUNS, GlobalsProbe, handler_modules
from .probes.memory import MemoryProbe, memory_limit_bytes
from .probes.processes import ProcessProbe
from .probes.threads import ThreadProbe
from .report import Finding, Resource, log_event, log_finding
from .sites import Creation, recorder

__all__ = ["Engine", "InvocationStats"]

_internal_log = logging.getLogger(LOGGER_NAME)


class InvocationStats(NamedTuple):
    """Counters after one invocation; kept when ``Engine.keep_stats`` is on (soaks)."""

    invocation: int
    fds: int | None  # open file descriptors
    threads: int | None  # live threads
    rss: int | None  # resident memory, bytes
    failed: bool  # the handler raised
    findings: int  # findings reported at this invocation
    db: int | None = None  # DB connections opened by invocations and still open


class _Token:
    """What before() hands after(): where the recording started, and the counts then."""

    __slots__ = ("before", "mark")

    def __init__(self, mark: int, before: dict[str, Any]) -> None:
        self.mark = mark
        self.before = before


class Engine:
    """Per guarded handler: probes, history and health. Built once, at decoration time."""

    def __init__(
        self,
        policy: Policy,
        logger: Any = None,
        sink: Callable[[Finding], None] | None = None,
        handler: Callable[..., Any] | None = None,
    ) -> None:
        self.policy = policy
        self.handler = handler
        self.logger = logger
        self.sink = sink or (lambda finding: log_finding(self.logger, finding))
        self.invocation = 0
        self.findings: list[Finding] = []
        self.unhealthy_since: int | None = None
        self.stats: list[InvocationStats] | None = None
        self.tracker = LeakTracker(
            policy.leak_after, every_growth=policy.strict, warmup=policy.warmup
        )
        self.probes: dict[str, Probe] = {}
        self._last_after: dict[str, Any] = {}  # for the globals probe, whose snapshot is dear
        # the hot path's view of self.probes, rebuilt by _wire() whenever it changes
        self._counted_before: tuple[tuple[str, Probe], ...] = ()
        self._counted_after: tuple[tuple[str, Probe], ...] = ()
        self._compared: tuple[tuple[str, Probe], ...] = ()
        self.memory_limit: int | None = None
        self._fd_limit: int | None = None
        self._fds_at_last_check: int | None = -1
        self._fd_cap: float | None = None  # above these, unhealthy
        self._memory_cap: float | None = None
        self._last_use: tuple[int | None, int | None] = (None, None)  # fds, RSS
        self.trend: MemoryTrend | None = None
        if policy.enabled:
            try:
                self._build_probes()
            except Exception as exc:  # noqa: BLE001 - fail open at decoration time too
                self._disable_all(exc)
            self._wire()
            recorder.install()
            if policy.recycle == "auto":
                runtime.install_hook()

    def _build_probes(self) -> None:
        wanted = self.policy.probes
        if "fds" in wanted:
            # with the db probe, a connection's socket or SQLite file is reported once, by it
            claimed = db_registry.claimed if "db" in wanted else None
            self.probes["fds"] = FdProbe(claimed)
        if "threads" in wanted:
            self.probes["threads"] = ThreadProbe(
                self.policy.thread_grace_ms, self.policy.allow_threads
            )
            # child processes go with threads: what keeps running after the invocation
            self.probes["processes"] = ProcessProbe()
        if "db" in wanted:
            self.probes["db"] = DbProbe()
        if "globals" in wanted:
            self.probes["globals"] = GlobalsProbe(
                handler_modules(self.handler),
                allow=self.policy.allow_globals,
                # content fingerprints cost more: for strict tests and soaks (a warm-up)
                deep=self.policy.strict or self.policy.warmup > 0,
                every=self.policy.shared_state_rotation,
            )
        if "memory" in wanted:
            self.probes["memory"] = MemoryProbe()
            self.memory_limit = memory_limit_bytes(self.policy.memory_limit_mb)
            if self.memory_limit:
                self._memory_cap = self.policy.memory_threshold * self.memory_limit
            self.trend = MemoryTrend(
                self.policy.memory_window, self.policy.memory_leak_kb * 1024, self.memory_limit
            )

    def _wire(self) -> None:
        """Lay out the probes for the hot path: who counts before, after, and is compared."""
        probes = self.probes.items()
        self._counted_before = tuple(
            (name, probe)
            for name, probe in probes
            if probe.counts_before and name not in self._last_after
        )
        self._counted_after = tuple(probes)
        self._compared = tuple((name, probe) for name, probe in probes if probe.counts_before)

    @property
    def active(self) -> bool:
        return self.policy.enabled

    @property
    def healthy(self) -> bool:
        return self.unhealthy_since is None

    @property
    def health(self) -> Health | None:
        """Resource use after the last invocation against the limits (None before the first)."""
        return None if self.invocation == 0 else self._judge(*self._last_use)

    def _judge(self, fds: int | None, rss: int | None) -> Health:
        return judge_health(
            fds=fds,
            fd_limit=self._fd_limit if fds is not None else None,
            fd_threshold=self.policy.fd_threshold,
            rss=rss,
            memory_limit=self.memory_limit,
            memory_threshold=self.policy.memory_threshold,
        )

    def keep_stats(self) -> list[InvocationStats]:
        self.stats = []
        return self.stats

    # -- around the call --------------------------------------------------------------

    def before(self) -> _Token:
        """Snapshot the counters and start recording. Never raises."""
        self.invocation += 1
        try:
            counts = self._before()
        except Exception as exc:  # noqa: BLE001 - fail open, whatever broke
            self._disable_all(exc)
            counts = {}
        return _Token(recorder.begin(), counts)

    def _before(self) -> dict[str, Any]:
        counts = self._snapshots(self._counted_before)
        # Nothing runs between invocations but what the handler left running: the state after
        # the last one is the state before this one, and a dear second snapshot is saved.
        if self._last_after:
            counts.update(self._last_after)
        fds = self.probes.get("fds")
        if isinstance(fds, FdProbe) and "fds" in counts:
            gone = self._safely("fds", fds.start, counts["fds"])
            if gone:
                self.tracker.observe(self.invocation, (), gone)
        return counts

    def _snapshots(self, probes: Iterable[tuple[str, Probe]]) -> dict[str, Any]:
        """These probes' counters: one pass, and a careful second one only if a probe broke."""
        try:
            return {name: probe.snapshot() for name, probe in probes}
        except Exception:  # noqa: BLE001 - find the broken probe and switch it off
            counts = {}
            for name, probe in probes:
                count = self._safely(name, probe.snapshot)
                if count is not None:
                    counts[name] = count
            return counts

    def after(self, token: _Token, *, failed: bool) -> list[Finding]:
        """Judge the invocation; return the findings reported now. Never raises."""
        creations = recorder.end(token.mark)  # first, so recording stops whatever follows
        try:
            return self._after(token, creations, failed)
        except Exception as exc:  # noqa: BLE001 - fail open, whatever broke
            self._disable_all(exc)
            return []

    def _after(self, token: _Token, creations: list[Creation], failed: bool) -> list[Finding]:
        counts = self._snapshots(self._counted_after)
        if "globals" in counts:
            self._keep_for_next(counts["globals"])
        added: list[Resource] = []
        removed: list[Resource] = []
        for name, probe in self._compared:
            before = token.before.get(name)
            if before is None:
                continue
            after = counts.get(name)
            # The cheap path: nothing moved, nothing was created, nothing is held.
            if after == before and not creations and not probe.holding:
                continue
            delta = self._safely(name, probe.diff, before, after, creations, self.invocation)
            if delta is not None:
                added += delta.added
                removed += delta.removed
        findings = self.tracker.observe(self.invocation, added, removed) if added or removed else []
        if added and self.policy.isolation == "restore":
            self._restore(token, added)
        db = self.probes.get("db")
        if isinstance(db, DbProbe) and db.holding:
            self._clean_up(db)
        rss = counts.get("memory")
        if self.trend is not None and rss is not None:
            growth = self.trend.observe(self.invocation, rss)
            if growth is not None:
                findings.append(growth)
        for finding in findings:
            self.findings.append(finding)
            # strict raises instead, but never over the handler's own error
            if failed or not self.policy.strict:
                self.sink(finding)
        self._check_health(counts.get("fds"), rss)
        if self.stats is not None:
            self.stats.append(
                InvocationStats(
                    self.invocation,
                    counts.get("fds"),
                    counts.get("threads"),
                    rss,
                    failed,
                    len(findings),
                    len(db.retained) if isinstance(db, DbProbe) else None,
                )
            )
        return findings

    def _keep_for_next(self, globals_after: Any) -> None:
        first = "globals" not in self._last_after
        self._last_after["globals"] = globals_after
        if first:
            self._wire()  # from now on the globals probe counts after invocations only

    def _clean_up(self, db: DbProbe) -> None:
        closed = self._safely(
            "db", db.cleanup, self.policy.db_cleanup, self.invocation, self.tracker.leaking
        )
        if closed:
            self.tracker.cleaned(closed)

    def _restore(self, token: _Token, added: list[Resource]) -> None:
        """Put back what the invocation changed and was not its to change: real isolation.
        A lazily initialised global (one change, not a leak) is kept: it is the cache."""
        probe = self.probes.get("globals")
        before = token.before.get("globals")
        if not isinstance(probe, GlobalsProbe) or before is None:
            return
        wanted = {
            res.key
            for res in added
            if res.kind == "global" and (res.noun in IMMEDIATE_NOUNS or self.tracker.leaking(res))
        }
        if wanted and self._safely("globals", probe.restore, before, wanted):
            restored = self._safely("globals", probe.snapshot)
            if restored is not None:
                self._last_after["globals"] = restored

    # -- health -----------------------------------------------------------------------

    def _check_health(self, fds: int | None, rss: int | None) -> None:
        self._last_use = (fds, rss)
        if self.unhealthy_since is not None:
            return  # judged: the environment is on its way out
        if fds != self._fds_at_last_check:  # the limit is re-read only when the count moved
            self._fds_at_last_check = fds
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            self._fd_limit = None if soft == resource.RLIM_INFINITY else soft
            self._fd_cap = self.policy.fd_threshold * self._fd_limit if self._fd_limit else None
        over_fds = fds is not None and self._fd_cap is not None and fds > self._fd_cap
        over_memory = rss is not None and self._memory_cap is not None and rss > self._memory_cap
        if not (over_fds or over_memory):
            if self.invocation == 1:
                _publish(healthy=True, reasons=(), invocation=1)
            return
        health = self._judge(fds, rss)
        self.unhealthy_since = self.invocation
        _publish(healthy=False, reasons=health.reasons, invocation=self.invocation)
        if self.policy.recycle == "auto":
            recycle.request(list(health.reasons))
        top = [
            {"count": count, "site": site.location if site else None, "what": what}
            for count, site, what in self.tracker.open_counts()[:5]
        ]
        log_event(
            self.logger,
            "safehandler.unhealthy",
            "safehandler: environment unhealthy: " + "; ".join(health.reasons),
            {
                "invocation": self.invocation,
                "reasons": list(health.reasons),
                "fds": health.fds,
                "fd_limit": health.fd_limit,
                "rss": health.rss,
                "memory_limit": health.memory_limit,
                "top_sites": top,
            },
        )

    # -- fail open --------------------------------------------------------------------

    def _safely(self, name: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except Exception as exc:  # noqa: BLE001 - a broken probe must not break the handler
            self.probes.pop(name, None)
            self._last_after.pop(name, None)
            self._wire()
            _internal_log.warning(
                "safehandler: the %s probe failed and is now off: %r", name, exc, exc_info=exc
            )
            return None

    def _disable_all(self, exc: Exception) -> None:
        self.probes.clear()
        self._last_after.clear()
        self._wire()
        self.trend = None
        _internal_log.warning(
            "safehandler: internal error, probes are now off: %r", exc, exc_info=exc
        )


def _publish(*, healthy: bool, reasons: tuple[str, ...], invocation: int) -> None:
    """The state file ``safehandler health`` reads; a courtesy that must never fail a call."""
    if os.environ.get(HEALTH_FILE) == "off":
        return
    try:
        health.write_state(healthy, reasons, invocation)
    except OSError as exc:
        _internal_log.warning("safehandler: cannot write the health state: %r", exc)

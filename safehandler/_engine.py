"""The engine around one invocation: one loop over the probes, whatever they watch.

    before:  snapshot the counters; catch up with what changed between invocations
    after:   snapshot again; diff where something moved; judge; act; publish

The engine knows the probes only through their protocol (``probes.Probe``) and judges nothing
itself: the verdict (``verdicts``) says what is a leak and what the probes may act on, the
health monitor (``health``) when to recycle.

Fail open: a probe that raises is switched off with one warning, and nothing the engine does
can change what the handler returns or raises. Only a strict policy raises, and only from the
decorator, after the handler has returned normally.
"""

from __future__ import annotations

import errno
import operator
import threading
from collections.abc import Callable, Hashable, Mapping

from . import _fleet, _health_state, _scope, integrations, recycle
from ._records import Finding, InvocationStats, Resource
from ._redact import redact_finding, use_patterns
from ._warn import warn
from .health import Health, HealthMonitor, memory_limit_bytes
from .policy import Policy
from .probes import Probe, build_probes
from .report import log_finding, log_unhealthy
from .verdicts import GroupHistory, Judge, Verdict

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from ._tuple import NamedTuple

__all__ = ["Engine", "Invocation"]


_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
_HOLDING = operator.attrgetter("holding")
_NAME = operator.attrgetter("name")
_SNAPSHOT = operator.methodcaller("snapshot")
# where each field sits in the list _stats() returns: a record whose values are their indices
_AT: Any = InvocationStats._make(range(len(InvocationStats._fields)))  # its values: ints


class Invocation(NamedTuple):
    """What an observer (``Engine.observe``) is told after each invocation."""

    stats: InvocationStats
    findings: list[Finding]  # reported at this invocation


Observer = Callable[[Invocation], None]


class _Token:
    """What before() hands after(): the invocation's scope, its number and the counts then."""

    __slots__ = ("before", "invocation", "opened")

    def __init__(
        self, opened: tuple[_scope.Scope, Any], invocation: int, before: dict[str, Any]
    ) -> None:
        self.opened = opened
        self.invocation = invocation
        self.before = before


class Engine:
    """Per guarded handler: probes, judgement and health. Built once, at decoration time."""

    def __init__(
        self,
        policy: Policy,
        logger: Any = None,
        handler: Callable[..., Any] | None = None,
        metrics: Any = None,
    ) -> None:
        self.policy = policy
        self.handler = handler
        self.logger = logger
        self.invocation = 0
        self.findings: list[Finding] = []  # every finding reported, in order
        self.probes: dict[str, Probe] = {}
        self._observers: list[Observer] = []
        self.metrics: _fleet.FleetMetrics | None = None  # the fleet view, when on
        # concurrent invocations (a thread-per-request server) judge one at a time
        self._lock = threading.Lock()
        self._quiet = 0  # observers that take the findings instead of the log
        self._out_of_fds_told = False
        self._last: dict[str, Any] = {}  # each probe's snapshot after the last invocation
        # the hot path's view of self.probes, rebuilt by _wire() whenever it changes
        self._counted_before: tuple[Probe, ...] = ()
        self._carried: tuple[Probe, ...] = ()
        self._counted_after: tuple[Probe, ...] = ()
        self._compared: tuple[Probe, ...] = ()
        self._holders: frozenset[Probe] = frozenset()
        self._uncarried: tuple[Probe, ...] = ()
        self._stat_slots: tuple[tuple[int, str, Callable[[Any], Any] | None], ...] = ()
        memory_limit = memory_limit_bytes(policy.memory_limit_mb) if policy.enabled else None
        self.judge = Judge(policy, memory_limit)
        self.monitor = HealthMonitor(policy, memory_limit, recycle.previous())
        if policy.enabled:
            use_patterns(policy.redact_patterns)  # every output of the process hides them
            try:
                integrations.attach_all(drivers=policy.tracks_db)
                self.probes = {probe.name: probe for probe in build_probes(policy, handler)}
            except Exception as exc:  # noqa: BLE001 - fail open at decoration time too
                self._disable_all(exc)
            self._wire()
            _scope.install()
            if policy.recycle == "auto":
                recycle.install_hook()
            # the fleet view is one more observer; off, there is none: no work at all
            self.metrics = _fleet.install(policy, self, powertools=metrics)
            if self.metrics is not None:
                self._observers.append(self.metrics)

    def _wire(self) -> None:
        """Lay out the probes for the hot path: who counts before, after, what carries over."""
        probes = tuple(self.probes.values())
        self._counted_before = tuple(
            p for p in probes if p.counts_before and not (p.carries_over and p.name in self._last)
        )
        self._carried = tuple(p for p in probes if p.carries_over and p.name in self._last)
        self._counted_after = probes
        self._compared = tuple(p for p in probes if p.counts_before)
        # only probes that can hold resources are asked whether they do, on every invocation
        self._holders = frozenset(p for p in probes if type(p).holding is not Probe.holding)
        self._uncarried = tuple(p for p in probes if p.carries_over and p.name not in self._last)
        fields = InvocationStats._fields
        self._stat_slots = tuple(
            (fields.index(p.stat), p.name, None if type(p).reading is Probe.reading else p.reading)
            for p in probes
            if p.stat in fields
        )

    # -- what others may read -----------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.policy.enabled

    @property
    def healthy(self) -> bool:
        return self.monitor.unhealthy_since is None

    @property
    def unhealthy_since(self) -> int | None:
        return self.monitor.unhealthy_since

    @property
    def health(self) -> Health | None:
        """Resource use after the last invocation against the limits (None before the first)."""
        return None if self.invocation == 0 else self.monitor.judge(*self.monitor.last_use)

    @property
    def memory_limit(self) -> int | None:
        return self.monitor.memory_limit

    def history(self, group: Hashable) -> GroupHistory | None:
        """What the judgement knows of a finding's group (``Finding.group``) by now."""
        return self.judge.tracker.history(group)

    def open_counts(self) -> list[tuple[int, Any, str]]:
        """(count still open, site, description) per group, largest first."""
        return self.judge.tracker.open_counts()

    def observe(self, observer: Observer, *, quiet: bool = False, soak: bool = False) -> _Observing:
        """Call ``observer`` after every invocation while the block runs. ``quiet``: the
        observer takes the findings, which are not logged meanwhile. ``soak``: growth is
        reported at once, whatever the guard's ``leak_span`` (a soak tells a growth that
        stopped apart after the fact)."""
        return _Observing(self, observer, quiet, soak)

    # -- around the call --------------------------------------------------------------

    def before(self, remaining_ms: Callable[[], Any] | None = None) -> _Token | None:
        """Open the invocation's scope and snapshot the counters. None when the call is nested
        in another guarded invocation, which owns it. ``remaining_ms``: the invocation's clock
        (a Lambda context's ``get_remaining_time_in_millis``). Never raises."""
        try:
            opened = _scope.begin(remaining_ms)
        except Exception as exc:  # noqa: BLE001 - fail open, whatever broke
            self._disable_all(exc)
            return None
        if opened is None:
            return None
        with self._lock:
            self.invocation += 1
            try:
                counts = self._before(self.invocation)
            except Exception as exc:  # noqa: BLE001 - fail open, whatever broke
                self._disable_all(exc)
                counts = {}
            return _Token(opened, self.invocation, counts)

    def _before(self, invocation: int) -> dict[str, Any]:
        counts = self._snapshots(self._counted_before)
        last = self._last
        gone: list[Resource] = []
        # the steady state: every count as the last invocation left it (one comparison in C,
        # identity first, as the loop below does it probe by probe)
        steady = counts.items() <= last.items()
        for probe in () if steady else self._counted_before:
            name = probe.name
            now = counts.get(name)
            if now is not None and (name not in last or last[name] != now):
                # Baseline, or a change between invocations: nobody's doing, but what went
                # away is gone.
                delta = self._safely(probe, probe.diff, last.get(name), now, _scope.IDLE, 0)
                if delta is not None:
                    gone += delta.removed
        for probe in self._carried:
            counts[probe.name] = probe.catch_up(last[probe.name])
        if gone:
            self.judge.tracker.observe(invocation, (), gone)
        return counts

    def _snapshots(self, probes: tuple[Probe, ...]) -> dict[str, Any]:
        """These probes' counters: one pass, and a careful second one only if a probe broke."""
        try:
            # (no comprehension: its frame would be one more per call, twice per invocation)
            return dict(zip(map(_NAME, probes), map(_SNAPSHOT, probes), strict=True))
        except Exception:  # noqa: BLE001 - find the broken probe and switch it off
            counts = {}
            for probe in probes:
                count = self._safely(probe, probe.snapshot)
                if count is not None:
                    counts[probe.name] = count
            return counts

    def after(self, token: _Token, *, failed: bool) -> list[Finding]:
        """Close the scope and judge the invocation; return the findings reported now.
        Never raises."""
        try:
            scope = _scope.end(token.opened)  # first, so recording stops whatever follows
        except Exception as exc:  # noqa: BLE001 - fail open, whatever broke
            _scope.abandon(token.opened)  # a scope left open would swallow every later call
            self._disable_all(exc)
            return []
        with self._lock:
            try:
                return self._after(token, scope, failed)
            except Exception as exc:  # noqa: BLE001 - fail open, whatever broke
                self._disable_all(exc)
                return []

    def _after(self, token: _Token, scope: _scope.Scope, failed: bool) -> list[Finding]:
        invocation = token.invocation
        counts = self._snapshots(self._counted_after)
        self._last = counts  # (a new dict per invocation: nobody else holds it)
        if self._uncarried and any(probe.name in counts for probe in self._uncarried):
            self._wire()  # from now on such a probe is read after invocations only
        before = token.before
        added: list[Resource] = []
        removed: list[Resource] = []
        seen: list[Probe] = []  # probes that saw something: they may act on the verdict
        busy = scope.creations or scope.handles  # (Scope.busy, inlined: per invocation)
        holders = self._holders
        # The steady state, judged at once: nothing was created, no probe holds anything, and
        # every count is as it was before (one comparison in C, identity first, as the loop
        # below does it probe by probe).
        steady = not busy and not any(map(_HOLDING, holders)) and before.items() <= counts.items()
        for probe in () if steady else self._compared:
            name = probe.name
            if name not in before or name not in counts:
                continue
            was, now = before[name], counts[name]
            # The cheap path: nothing moved, nothing was created, nothing is held.
            # (identity first: a probe's state object may compare in Python)
            if (
                (now is was or now == was)
                and not busy
                and (probe not in holders or not probe.holding)
            ):
                continue
            delta = self._safely(probe, probe.diff, was, now, scope, invocation)
            if delta is not None:
                added += delta.added
                removed += delta.removed
                if delta.added or (probe in holders and probe.holding):
                    seen.append(probe)
        stats = self._stats(invocation, counts, failed)  # InvocationStats' fields, in order
        fds, rss = stats[_AT.fds], stats[_AT.rss]
        findings = self.judge.observe(invocation, added, removed, rss)
        if seen:
            self._act(seen, self.judge.verdict(invocation, findings, scope))
        if findings:
            # findings leave the engine redacted: the LeakError, observers, self.findings
            findings = [redact_finding(finding) for finding in findings]
            stats[_AT.findings] = len(findings)
            self._publish(findings, failed)
        self._check_health(invocation, fds, rss)
        if self._observers:
            told = Invocation(InvocationStats._make(stats), findings)
            for observer in list(self._observers):
                observer(told)
        return findings

    def _act(self, probes: list[Probe], verdict: Verdict) -> None:
        """The probes that saw something carry out what the verdict allows."""
        for probe in probes:
            released = self._safely(probe, probe.act, verdict)
            if released:
                self.judge.tracker.cleaned(released)
            if probe.carries_over and probe.name in self.probes:
                # the next invocation starts from the state after the action
                state = self._safely(probe, probe.snapshot)
                if state is not None:
                    self._last[probe.name] = state

    def _stats(self, invocation: int, counts: Mapping[str, Any], failed: bool) -> list[Any]:
        # a list, made an InvocationStats only when an observer is told (per invocation)
        values: list[Any] = [invocation, None, None, None, failed, 0, None]
        for index, name, reading in self._stat_slots:
            if name in counts:
                count = counts[name]
                # the protocol's default reading inlined: the snapshot, when it is a number
                values[index] = (
                    reading(count) if reading is not None else count if type(count) is int else None
                )
        return values

    # -- publishing -------------------------------------------------------------------

    def _publish(self, findings: list[Finding], failed: bool) -> None:
        for finding in findings:
            self.findings.append(finding)
            # strict raises instead, but never over the handler's own error
            if not self._quiet and (failed or not self.policy.strict):
                try:
                    log_finding(self.logger, finding)
                except Exception as exc:  # noqa: BLE001 - a broken log handler is theirs
                    warn("safehandler: cannot log a finding: %r", exc)

    def _check_health(self, invocation: int, fds: int | None, rss: int | None) -> None:
        health = self.monitor.check(invocation, fds, rss)
        if health is None:
            if invocation == 1 and self.monitor.unhealthy_since is None:
                _health_state.publish(healthy=True, reasons=(), invocation=1)
            return
        if health.recyclable:  # else near the limit, but a restart would not change that
            _health_state.publish(healthy=False, reasons=health.reasons, invocation=invocation)
            if self.policy.recycle == "auto":
                recycle.request(list(health.reasons), invocation, fds, rss)
        log_unhealthy(self.logger, invocation, health, self.open_counts()[:5])

    # -- fail open --------------------------------------------------------------------

    def _safely(self, probe: Probe, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as exc:
            if exc.errno in _OUT_OF_FDS:
                # The process is out of descriptors, the very leak the probes watch: the probe
                # is not broken, it cannot look this time. It skips this reading (nothing of
                # its state changed) and looks again at the next invocation.
                if not self._out_of_fds_told:
                    self._out_of_fds_told = True
                    warn(
                        "safehandler: out of file descriptors, the %s probe skips a reading: %r",
                        probe.name,
                        exc,
                    )
                return None
            self._switch_off(probe, exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a broken probe must not break the handler
            self._switch_off(probe, exc)
            return None

    def _switch_off(self, probe: Probe, exc: Exception) -> None:
        self.probes.pop(probe.name, None)
        self._last.pop(probe.name, None)
        self._wire()
        warn("safehandler: the %s probe failed and is now off: %r", probe.name, exc, exc=exc)

    def _disable_all(self, exc: Exception) -> None:
        self.probes.clear()
        self._last.clear()
        self._wire()
        warn("safehandler: internal error, probes are now off: %r", exc, exc=exc)


class _Observing:
    """``Engine.observe``'s block (a class: ``contextlib`` costs 1.4 ms of cold start)."""

    __slots__ = ("_engine", "_observer", "_quiet", "_soak", "_span")

    def __init__(self, engine: Engine, observer: Observer, quiet: bool, soak: bool) -> None:
        self._engine, self._observer, self._quiet, self._soak = engine, observer, quiet, soak
        self._span = 1

    def __enter__(self) -> None:
        self._engine._observers.append(self._observer)
        self._engine._quiet += self._quiet
        tracker = self._engine.judge.tracker
        self._span = tracker.span
        if self._soak:
            tracker.span = 1

    def __exit__(self, *exc_info: object) -> None:
        self._engine._observers.remove(self._observer)
        self._engine._quiet -= self._quiet
        self._engine.judge.tracker.span = self._span

"""Judgement: which retained resources are leaks, when memory grows, when to call it unhealthy.

Retained is not leaked. What exists after init is baseline. A resource created by an invocation
and still open at its end is *retained*: a module-level connection opened lazily on the first
call is retained once and reused, which is what Lambda recommends. A *leak* is growth: a
creation site whose count of open resources reaches a new high in invocation after invocation.
A site is reported once it has grown in ``leak_after`` invocations, and again each time its
count doubles, so a steady leak is one log line per doubling, not one per invocation. In
production (``span`` > 1) the first report also waits until the growth went on for ``span``
invocations (``SUSTAINED_GROWTH`` for what a pool keeps, none for DB connections) without
dying out: a memo of the tenants seen, or a pool that stops at three, grows fast at first and
then stops; a leak keeps its pace.
Some resources are findings at once (``is_immediate``): a thread or child process alive
after its invocation, which the frozen environment resumes inside a later one, and global state
that is not the handler's to change (``json.dumps``, ``os.environ``). An allowed cache (named in
``allow_globals`` or marked with ``allow_global``) may change; only growth in every one of
``allowed_growth_after`` consecutive invocations is reported, as an unbounded cache.

The verdict of one invocation (``Verdict``) says what to report and what may be acted on; the
probes carry the actions out.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Hashable, Iterable

from ._records import (
    ALLOWED_CACHE,
    GROWING_CACHE,
    SHARED_STATE_NOUNS,
    Finding,
    Handle,
    Resource,
    Site,
)
from .policy import Policy

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import NamedTuple

    from ._scope import Scope
else:
    from ._tuple import NamedTuple

__all__ = [
    "IMMEDIATE_NOUNS",
    "GroupHistory",
    "Judge",
    "LeakTracker",
    "MemoryTrend",
    "Verdict",
    "is_immediate",
    "is_immediate_finding",
    "stopped_growing",
]

# Global state that is not the handler's to change: one change, even in the first invocation,
# is a finding. (A growing cache is reported at once too: it already grew in that many
# invocations.)
IMMEDIATE_NOUNS = SHARED_STATE_NOUNS | {GROWING_CACHE}
_IMMEDIATE_KINDS = frozenset({"thread", "process"})


def is_immediate(res: Resource) -> bool:
    """A finding at its first appearance, whatever ``leak_after`` says: a thread or child
    process still running resumes inside a later invocation; the shared state is not the
    handler's to change. (An idle thread, parked waiting for work, will not run by itself:
    it is counted, like an open file.)"""
    if res.kind in _IMMEDIATE_KINDS:
        return res.noun != "idle thread"
    return res.kind == "global" and res.noun in IMMEDIATE_NOUNS


def is_immediate_finding(finding: Finding) -> bool:
    """``is_immediate`` for a finding: a running thread or process, shared state changed."""
    if finding.kind in _IMMEDIATE_KINDS:
        return finding.noun != "idle thread"
    return finding.kind == "global" and finding.noun in IMMEDIATE_NOUNS


# A growth that stopped is bounded only after this many invocations without it, at least.
_BOUNDED_QUIET = 10


def stopped_growing(
    finding: Finding, last_grew: int, now: int, grew_with: set[str], seen_since: set[str]
) -> bool:
    """Bounded, not a leak: a container or pool whose growth stopped once the events repeated
    (a memo of ten tenants, a pool that stops at three). Every event that grew it came again
    after its last growth without growing it, for at least as many invocations as the growth
    took (and ten). A running thread and changed shared state are never bounded: they do harm
    however few they are; nor is memory, judged by its own trend."""
    if finding.kind == "memory" or is_immediate_finding(finding) or not last_grew:
        return False
    quiet = now - last_grew
    return quiet >= max(last_grew, _BOUNDED_QUIET) and grew_with <= seen_since


class GroupHistory(NamedTuple):
    """What the tracker knows of one group: its latest detail, its peak, when it grew, and the
    latest site (a change to global state may get its line after its first finding)."""

    latest: str
    peak: int
    grew_at: list[int]  # the first thousand invocations that grew it
    last_grew: int = 0  # the last invocation that grew it
    site: Site | None = None


_GREW_AT_KEPT = 1000


class _SiteState:
    __slots__ = (
        "cleaned",
        "first_invocation",
        "grew_at",
        "grew_in",
        "high",
        "last_grew",
        "live",
        "reported_live",
        "sample",
    )

    def __init__(self, sample: Resource, first_invocation: int) -> None:
        self.sample = sample  # kind, noun, site and detail of the group
        self.first_invocation = first_invocation
        self.live = 0
        self.high = 0  # the highest live count seen
        self.grew_in = 0  # invocations in which the live count reached a new high
        self.reported_live = 0  # total (live + cleaned) at the last report
        self.cleaned = 0  # closed by safehandler's cleanup: still left open by the handler
        self.grew_at: list[int] = []  # the first invocations that grew it
        self.last_grew = 0

    @property
    def total(self) -> int:
        return self.live + self.cleaned


class LeakTracker:
    """Live counts per creation site, and the growth rule that turns them into findings."""

    def __init__(
        self,
        leak_after: int,
        *,
        every_growth: bool = False,
        warmup: int = 0,
        allowed_growth_after: int = 10,
        span: int = 1,
    ) -> None:
        self.leak_after = leak_after
        # production: growth is a leak once it went on this long (a bounded one stops before)
        self.span = span
        self.allowed_growth_after = allowed_growth_after
        # group of an allowed cache -> (the last invocation it grew in, the streak)
        self._streaks: dict[Hashable, tuple[int, int]] = {}
        # strict: once a site is a leak, every invocation that grows it is reported again
        self.every_growth = every_growth
        # growth in the first ``warmup`` invocations is initialisation (threads excepted)
        self.warmup = warmup
        self.sites: dict[Hashable, _SiteState] = {}

    def observe(
        self, invocation: int, added: Iterable[Resource], removed: Iterable[Resource]
    ) -> list[Finding]:
        for res in removed:
            state = self.sites.get(res.group)
            if state is not None:
                state.live = max(0, state.live - 1)
        touched: dict[Hashable, _SiteState] = {}
        for res in self._streaking(invocation, added):
            state = self.sites.get(res.group)
            if state is None:
                state = self.sites[res.group] = _SiteState(res, invocation)
            state.live += 1
            state.sample = res  # the latest detail is the most telling
            touched[res.group] = state
        findings = []
        for state in touched.values():
            if state.live <= state.high:
                continue  # replaced what it closed: reuse, not growth
            state.high = state.live
            if invocation <= self.warmup and not is_immediate(state.sample):
                continue
            state.grew_in += 1
            state.last_grew = invocation
            if len(state.grew_at) < _GREW_AT_KEPT:
                state.grew_at.append(invocation)
            if self._due(state, invocation):
                state.reported_live = state.total
                findings.append(self._finding(state, invocation))
        return findings

    def _streaking(self, invocation: int, added: Iterable[Resource]) -> Iterable[Resource]:
        """Allowed caches count only once they grew in that many invocations in a row."""
        for res in added:
            if res.noun != ALLOWED_CACHE:
                yield res
                continue
            last, streak = self._streaks.get(res.group, (0, 0))
            streak = streak + 1 if last == invocation - 1 else 1
            self._streaks[res.group] = (invocation, streak)
            if streak >= self.allowed_growth_after:
                # the probe says "app.CACHE grew: 18 -> 19 items"
                dotted, _, sizes = res.detail.partition(" grew: ")
                detail = f"{dotted} grew in {streak} consecutive invocations: {sizes}"
                yield Resource(
                    res.kind,
                    res.key,
                    GROWING_CACHE,
                    detail,
                    res.site,
                    res.invocation,
                    (res.kind, GROWING_CACHE, res.key),
                )

    def cleaned(self, resources: Iterable[Resource]) -> None:
        """safehandler closed these: gone, yet the handler left them open (still growth)."""
        for res in resources:
            state = self.sites.get(res.group)
            if state is not None:
                state.live = max(0, state.live - 1)
                state.high = max(0, state.high - 1)
                state.cleaned += 1

    def _due(self, state: _SiteState, invocation: int) -> bool:
        immediate = is_immediate(state.sample)
        if state.grew_in < (1 if immediate else self.leak_after):
            return False
        if not immediate and not state.reported_live and not self._keeps_growing(state, invocation):
            return False  # not yet told apart from a memo or pool that stops growing
        if self.every_growth or state.reported_live == 0:
            return True
        return state.total >= 2 * state.reported_live

    def _keeps_growing(self, state: _SiteState, invocation: int) -> bool:
        """Growth that went on for ``span`` invocations and is not dying out: the later half
        of its time holds at least half as many growing invocations as the earlier half. A
        memo of the tenants seen grows in most invocations at first, then ever more rarely as
        the tenants repeat; a leak keeps its pace, however slow."""
        needed = self._span_of(state.sample.kind)
        if needed <= 1:
            return True
        grew_at = state.grew_at
        started = grew_at[0] if grew_at else state.first_invocation
        span = invocation - started + 1
        if span < needed:
            return False
        if len(grew_at) >= _GREW_AT_KEPT:
            return True
        earlier = bisect.bisect_left(grew_at, started + span // 2)
        return 2 * (len(grew_at) - earlier) >= earlier

    def _span_of(self, kind: str) -> int:
        """The span a growth of this kind must go on for. Handler state (a memo) takes the
        whole span; what a pool keeps (files, sockets, idle threads) at most
        ``SUSTAINED_GROWTH`` invocations, since a pool that runs dry stops growing too (a
        leak of SQLAlchemy checkouts stops at 15); a DB connection none: the database probe
        tells a pool's reuse from a leak's connections never used again, and cleanup acts on
        that."""
        if kind == "db_connection":
            return 1
        return self.span if kind == "global" else min(self.span, SUSTAINED_GROWTH)

    @staticmethod
    def _finding(state: _SiteState, invocation: int) -> Finding:
        res = state.sample
        detail = res.detail
        if state.cleaned:
            detail += f" (safehandler cleaned up {state.cleaned:,} of them)"
        return Finding(
            group=res.group,
            kind=res.kind,
            count=state.total,
            site=res.site,
            first_invocation=state.first_invocation,
            detail=detail,
            noun=res.noun,
            invocation=invocation,
        )

    def grew_in(self, res: Resource) -> int:
        """In how many invocations ``res``'s group reached a new high."""
        state = self.sites.get(res.group)
        return state.grew_in if state is not None else 0

    def leaking(self, res: Resource) -> bool:
        """Whether ``res``'s group has been judged a leak (cleanup acts on these)."""
        state = self.sites.get(res.group)
        return state is not None and state.reported_live > 0

    def history(self, group: Hashable) -> GroupHistory | None:
        """The group's latest detail, the highest count it reached, and when it grew."""
        state = self.sites.get(group)
        if state is None:
            return None
        return GroupHistory(
            state.sample.detail,
            state.high + state.cleaned,
            list(state.grew_at),
            state.last_grew,
            state.sample.site,
        )

    def open_counts(self) -> list[tuple[int, Site | None, str]]:
        """(live count, site, description) per group with something open, largest first."""
        rows = [
            (state.live, state.sample.site, f"{state.sample.noun} {state.sample.detail}".strip())
            for state in self.sites.values()
            if state.live
        ]
        return sorted(rows, key=lambda row: -row[0])


class _Floors:
    """The lowest RSS of each window of ``size`` invocations; the last four kept."""

    __slots__ = ("_current", "_seen", "floors", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.floors: deque[int] = deque(maxlen=4)  # bounded: never one entry per window
        self._current: int | None = None
        self._seen = 0

    def add(self, rss: int) -> bool:
        """Whether this closed a window."""
        if self._current is None or rss < self._current:
            self._current = rss
        self._seen += 1
        if self._seen < self.size:
            return False
        self.floors.append(self._current)
        self._current, self._seen = None, 0
        return True

    def rate(self) -> float | None:
        """Bytes per invocation the floor rose by in each of the last three windows, at
        least: the current rate (a warm-up that levels off shows a falling one), or None when
        the floor did not rise in every one of them."""
        floors = self.floors
        if len(floors) < 4 or not all(a < b for a, b in itertools.pairwise(floors)):
            return None
        return min(b - a for a, b in itertools.pairwise(floors)) / self.size

    @property
    def rising(self) -> bool:
        """The floor rose in the last two windows: growth may be coming."""
        floors = self.floors
        return len(floors) >= 3 and floors[-3] < floors[-2] < floors[-1]


# Growth this many times the threshold is clear on windows a quarter as long: judged from the
# end of the first window (the warm-up), so a fast leak is found in half the invocations.
_FAST_FACTOR = 16
_FAST_MIN_WINDOW = 40


class MemoryTrend:
    """RSS growth judged on window minima: a peak is noise, a rising floor is a leak.

    Each window of ``window`` invocations keeps its lowest RSS. Growth is reported when the
    floor rose in three consecutive windows by at least ``leak_bytes`` per invocation in each
    (the rate reported is the smallest of the three: the current one, not the warm-up's). A
    growth of ``_FAST_FACTOR`` times that is judged on quarter windows after the first window,
    so that a 300 KiB-per-invocation leak is found by invocation 200 of a window of 100.
    Reported again only after three more windows. The state is a few numbers, however long
    the process lives.
    """

    def __init__(self, window: int, leak_bytes: float, limit_bytes: int | None) -> None:
        self.window = window
        self.leak_bytes = leak_bytes
        self.limit_bytes = limit_bytes
        self._slow = _Floors(window)
        # (quarter windows shorter than ten invocations would see a sawtooth as growth)
        self._fast = _Floors(window // 4) if window >= _FAST_MIN_WINDOW else None
        self._seen = 0
        self._quiet_until = 0  # the invocation before which we do not report again

    @property
    def floors(self) -> list[int]:
        """The last floors of the full windows (at most four)."""
        return list(self._slow.floors)

    @property
    def rising(self) -> bool:
        """The floor rose in the last two windows (full or quarter): growth may be coming."""
        return self._slow.rising or (self._fast is not None and self._fast.rising)

    def judged_from(self) -> tuple[int | None, int]:
        """(first invocation at which fast growth can be judged, or None; the same for
        growth at the threshold)."""
        fast = self.window + 4 * self._fast.size if self._fast is not None else None
        return fast, 4 * self.window

    def unjudged(self, invocations: int) -> str | None:
        """What ``invocations`` were too few to judge, in a sentence; None when enough."""
        fast, slow = self.judged_from()
        if invocations >= slow:
            return None
        kib = self.leak_bytes / 1024
        if fast is None or invocations < fast:
            first = slow if fast is None else fast
            return (
                f"memory not judged: the trend needs {first:,} invocations "
                f"(ran {invocations:,}; memory_window={self.window})"
            )
        return (
            f"memory judged only for growth above {kib * _FAST_FACTOR:,.0f} KiB per invocation: "
            f"growth above {kib:,.0f} KiB needs {slow:,} invocations (ran {invocations:,})"
        )

    def observe(self, invocation: int, rss: int) -> Finding | None:
        self._seen += 1
        found = None
        if self._slow.add(rss):
            found = self._judge(invocation, self._slow, self.leak_bytes)
        fast = self._fast
        if fast is not None and self._seen > self.window and fast.add(rss) and found is None:
            full = self._slow.floors
            # the full windows must agree: the last one's floor above the one before it
            if len(full) >= 2 and full[-2] < full[-1]:
                found = self._judge(invocation, fast, self.leak_bytes * _FAST_FACTOR)
        return found

    def _judge(self, invocation: int, floors: _Floors, threshold: float) -> Finding | None:
        if invocation < self._quiet_until:
            return None
        per_invocation = floors.rate()
        if per_invocation is None or per_invocation < threshold:
            return None
        self._quiet_until = invocation + 3 * self.window
        span = 3 * floors.size
        return Finding(
            kind="memory",
            count=round(per_invocation),
            site=None,
            first_invocation=max(1, invocation - span + 1),
            detail=self._describe(list(floors.floors), per_invocation, span),
            noun="byte per invocation",
            invocation=invocation,
        )

    def _describe(self, floors: list[int], per_invocation: float, span: int) -> str:
        mib = 1024 * 1024
        text = (
            f"RSS grows {per_invocation / 1024:.1f} KiB per invocation over the last "
            f"{span} invocations "
            f"({floors[0] / mib:.1f} MiB -> {floors[-1] / mib:.1f} MiB)"
        )
        if self.limit_bytes:
            remaining = max(0, self.limit_bytes - floors[-1])
            text += (
                f"; at this rate the {self.limit_bytes / mib:.0f} MiB limit is reached in about "
                f"{int(remaining / per_invocation):,} invocations"
            )
        return text


# A creation site that grew in this many invocations, none of whose connections was ever used
# again, shows more growth than a bounded cache or pool does before its first reuse: strong
# evidence. (Below SQLAlchemy's default pool limit of 15, so a leaked checkout is closed
# before the pool runs dry.)
SUSTAINED_GROWTH = 8


class Verdict:
    """One invocation judged: what to report, and what the probes may act on.

    Reports may rest on weak evidence (a second growing invocation); the irreversible actions
    need strong evidence, and never touch what another live invocation may be using.
    """

    __slots__ = (
        "_cleanup",
        "_restore",
        "_tracker",
        "findings",
        "invocation",
        "overlapped",
        "serial",
    )

    def __init__(  # noqa: PLR0917 - what one judged invocation knows
        self,
        policy: Policy,
        tracker: LeakTracker,
        invocation: int,
        findings: list[Finding],
        serial: int,
        overlapped: bool,
    ) -> None:
        self.invocation = invocation
        self.findings = findings
        self.serial = serial  # the invocation's scope
        self.overlapped = overlapped  # another invocation ran meanwhile
        self._tracker = tracker
        self._cleanup = policy.db_cleanup
        self._restore = policy.isolation == "restore"

    def rolls_back(self, handle: Handle) -> bool:
        """Roll back an open transaction this invocation opened or last used: it ends here.
        (A transaction another invocation is using is not this one's to end.)"""
        return self._cleanup != "off" and handle.last_used == self.serial

    def closes(self, res: Resource, handle: Handle, *, in_use: bool, cache_like: bool) -> bool:
        """Whether to close a retained connection.

        ``all``: every connection this invocation opened and left open. ``leaks``: a
        connection of a creation site that grew in ``SUSTAINED_GROWTH`` invocations, opened by
        an earlier invocation and never used since, of a site none of whose connections was
        ever used again (``cache_like``: a bounded cache or pool reuses what it keeps); the
        driver must tell use apart (``tracks_use``), else it is reported only. Never one that
        a live invocation may be using (``in_use``).
        """
        if self._cleanup == "off" or in_use:
            return False
        if self._cleanup == "all" and handle.scope == self.serial:
            return True
        return (
            handle.tracks_use
            and not handle.used_again
            and not cache_like
            and res.invocation < self.invocation
            and self._tracker.grew_in(res) >= SUSTAINED_GROWTH
        )

    def restores(self, res: Resource) -> bool:
        """Whether to put this change to global state back: restore is on, no other invocation
        runs (the state is shared), and it was not the handler's to change or it is a leak."""
        if not self._restore or self.overlapped:
            return False
        return is_immediate(res) or self._tracker.leaking(res)

    def repeated(self, res: Resource) -> bool:
        """Whether ``res``'s group changed in more than one invocation: a one-time change (a
        working directory set once) is deliberate, not a leak to undo."""
        return self._tracker.grew_in(res) > 1


class Judge:
    """The judgement over a guarded handler's life: the leak tracker and the memory trend."""

    def __init__(self, policy: Policy, memory_limit: int | None) -> None:
        self.policy = policy
        self.tracker = LeakTracker(
            policy.leak_after,
            every_growth=policy.strict,
            warmup=policy.warmup,
            span=policy.growth_span,
        )
        self.trend = MemoryTrend(policy.memory_window, policy.memory_leak_kb * 1024, memory_limit)

    def observe(
        self, invocation: int, added: list[Resource], removed: list[Resource], rss: int | None
    ) -> list[Finding]:
        """The findings of one invocation: growth per creation site, and the memory trend."""
        findings = self.tracker.observe(invocation, added, removed) if added or removed else []
        if rss is not None:
            growth = self.trend.observe(invocation, rss)
            if growth is not None:
                findings.append(growth)
        return findings

    def verdict(self, invocation: int, findings: list[Finding], scope: Scope) -> Verdict:
        """What the probes may act on after this invocation."""
        return Verdict(
            self.policy, self.tracker, invocation, findings, scope.serial, scope.overlapped
        )

"""The soak loop: run a handler many times under the guard; gather what outlived it.

Verdicts follow leak hunters' practice: counted resources get zero tolerance after a short
warm-up (``leak_after=1``, ``warmup=1``), threads a bounded grace period, memory a trend over
windows. A finding remembers which invocations grew it, so leaks that happen only on some
paths (the handler raised, a certain event) are reported with that path.
"""

from __future__ import annotations

import errno
import os
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TextIO

from .. import _health_state
from .._constants import DB_CLEANUP
from .._engine import Engine, Invocation
from .._records import Finding, InvocationStats
from ..errors import LeakError
from ..guard import engine_of, guard
from ..policy import Policy
from ..probes.memory import TRACE_FRAMES, growth_sites
from ..verdicts import stopped_growing
from ._context import FakeLambdaContext
from ._events import labelled
from ._progress import Progress
from ._report import SoakReport

__all__ = ["DEFAULT_INVOCATIONS", "soak", "soak_policy"]

DEFAULT_INVOCATIONS = 1500
_FD_EXHAUSTED = (errno.EMFILE, errno.ENFILE)


def soak_policy(environ: Mapping[str, str] | None = None, **settings: Any) -> Policy:
    """The environment's policy made strict for a soak: report everything after one warm-up
    invocation, and observe the handler as it is (no DB cleanup unless
    ``SAFEHANDLER_DB_CLEANUP`` says so), so the report shows what it leaks."""
    environ = os.environ if environ is None else environ
    defaults: dict[str, Any] = {"mode": "report", "leak_after": 1, "warmup": 1}
    if DB_CLEANUP not in environ:
        defaults["db_cleanup"] = "off"
    return Policy.from_env(environ, **{**defaults, **settings})


def soak(
    handler: Callable[..., Any],
    *,
    events: Any = None,
    invocations: int = DEFAULT_INVOCATIONS,
    policy: Policy | None = None,
    name: str | None = None,
    seed: int | None = None,
    context_factory: Callable[[], Any] | None = None,
    progress: TextIO | None = None,
) -> SoakReport:
    """Run ``handler`` ``invocations`` times and report every leak it showed.

    ``events``: see ``_events.labelled``. A handler that is already guarded is soaked with its
    own engine; any other is guarded here with ``policy`` (default: ``soak_policy()``).
    ``progress``: a terminal stream for a progress bar.
    """
    if invocations < 1:
        raise ValueError(f"invocations={invocations!r}: must be at least 1")
    if context_factory is None:
        context_factory = FakeLambdaContext
    engine = engine_of(handler)
    if engine is None:
        handler = guard(handler, policy=policy or soak_policy())
        engine = engine_of(handler)
    assert engine is not None
    collected: list[Finding] = []
    stats: list[InvocationStats] = []

    tracing = _GrowthTrace(engine)

    def observe(invocation: Invocation) -> None:
        collected.extend(invocation.findings)
        stats.append(invocation.stats)
        tracing.after(invocation)

    start_invocation = engine.invocation
    outcomes: dict[int, tuple[str, str | None]] = {}  # invocation -> (event label, error)
    errors: Counter[str] = Counter()
    exhausted_at: int | None = None
    feed = labelled(events, invocations, seed)
    bar = Progress(progress, invocations)
    started = time.perf_counter()
    done = 0
    # the soaked handler is not the environment's: its health is in the report, not the file
    with engine.observe(observe, quiet=True), _health_state.paused():
        try:
            for _, (label, event) in zip(range(invocations), feed, strict=False):
                done += 1
                error = None
                try:
                    handler(event, context_factory())
                except LeakError:
                    pass  # a strict guard raised what the observer was told
                except Exception as exc:  # noqa: BLE001 - the handler's own errors are counted
                    error = _error_name(exc)
                    errors[error] += 1
                    if exhausted_at is None and getattr(exc, "errno", None) in _FD_EXHAUSTED:
                        exhausted_at = done
                outcomes[engine.invocation] = (label, error)
                bar.update(done)
        finally:
            bar.close()
            tracing.finish()  # tracemalloc off again, whatever happened
    seconds = time.perf_counter() - started
    merged = _merge(collected, engine, outcomes, start_invocation)
    findings, bounded = _bounded(merged, engine, outcomes)
    findings = tracing.explain(findings)
    return SoakReport(
        handler=name or _describe(handler),
        invocations=done,
        errors=sum(errors.values()),
        findings=findings,
        notes=_notes(engine, done, findings) + bounded,
        seconds=seconds,
        error_types=errors,
        stats=stats,
        fd_exhausted_at=exhausted_at,
        fd_limit=_soft_fd_limit(),
    )


class _GrowthTrace:
    """What allocates, once memory looks like growing: ``tracemalloc`` is started when the
    trend's floor rose in two windows, for a sample of invocations (it slows allocations
    tenfold or more), and the soak's memory finding names the lines whose allocations grew
    over that sample."""

    SAMPLE = 10  # invocations traced: enough to rank the lines of a steady growth

    def __init__(self, engine: Engine) -> None:
        self.trend = engine.judge.trend if "memory" in engine.probes else None
        self.before: Any = None
        self.sites: list[tuple[str, int, int]] | None = None
        self.traced = 0

    def after(self, invocation: Invocation) -> None:
        trend = self.trend
        if trend is None or self.sites is not None:
            return
        if self.before is not None:
            self.traced += 1
            if self.traced >= self.SAMPLE:
                self._stop()
        elif not tracemalloc.is_tracing() and (
            trend.rising or any(f.kind == "memory" for f in invocation.findings)
        ):
            tracemalloc.start(TRACE_FRAMES)
            self.before = tracemalloc.take_snapshot()

    def _stop(self) -> None:
        self.sites = []  # once, even if the snapshot fails
        try:
            self.sites = growth_sites(self.before, tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()

    def finish(self) -> None:
        if self.before is not None and self.sites is None:
            self._stop()

    def explain(self, findings: list[Finding]) -> list[Finding]:
        if self.before is None:
            return findings
        sites = [_site_dict(*site) for site in self.sites or ()]
        return [
            f.replace(extra={**f.extra, "allocated_at": sites}) if f.kind == "memory" else f
            for f in findings
        ]


def _bounded(
    findings: list[Finding], engine: Engine, outcomes: Mapping[int, tuple[str, str | None]]
) -> tuple[list[Finding], list[str]]:
    """The findings whose growth stopped once the events repeated: notes, not a failing
    verdict (``verdicts.stopped_growing``)."""
    kept, notes = [], []
    now = engine.invocation
    for finding in findings:
        history = engine.history(finding.group) if finding.group is not None else None
        last = history.last_grew if history else 0
        grew_with = {outcomes[n][0] for n in history.grew_at if n in outcomes} if history else set()
        seen_since = {label for n, (label, _) in outcomes.items() if n > last}
        if history and stopped_growing(finding, last, now, grew_with, seen_since):
            told = str(finding).rsplit(", reported at invocation", 1)[0]
            notes.append(
                f"bounded, not a leak: {told}; it stopped growing at invocation "
                f"{last - (now - len(outcomes)):,} and the same events did not grow it in the "
                f"{now - last:,} invocations since"
            )
        else:
            kept.append(finding)
    return kept, notes


def _site_dict(filename: str, lineno: int, size: int) -> dict[str, Any]:
    return {"file": filename, "line": lineno, "bytes": size}


def _notes(engine: Engine, invocations: int, findings: list[Finding]) -> list[str]:
    """What the verdict could not say: memory not judged yet."""
    notes = []
    if "memory" in engine.probes and not any(f.kind == "memory" for f in findings):
        unjudged = engine.judge.trend.unjudged(invocations)
        if unjudged:
            notes.append(unjudged)
    return notes


def _error_name(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return f"{type(exc).__name__}[{errno.errorcode[code]}]"
    return type(exc).__name__


def _soft_fd_limit() -> int | None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _describe(handler: Callable[..., Any]) -> str:
    module = getattr(handler, "__module__", "?")
    return f"{module}:{getattr(handler, '__qualname__', repr(handler))}"


# -- path attribution: one finding per group, and which events grew it ----------------


def _merge(
    findings: list[Finding],
    engine: Engine,
    outcomes: Mapping[int, tuple[str, str | None]],
    offset: int,
) -> list[Finding]:
    """One finding per group: when it was first found, its peak count, and the path that grew it."""
    merged: dict[Hashable, Finding] = {}
    for finding in findings:
        if finding.kind == "memory":
            merged[("memory",)] = finding  # the latest trend says it best
            continue
        key = finding.group or (finding.kind, finding.noun, finding.site or finding.detail)
        merged.setdefault(key, finding)
    out = []
    for key, first in merged.items():
        if first.kind == "memory":
            out.append(_renumber(first, offset))
            continue
        # the detail as it is now ("grew: 1,499 -> 1,500 items"), the peak count
        history = engine.history(key)
        detail = history.latest if history else first.detail
        peak = history.peak if history else None
        path = _path(history.grew_at if history else [], outcomes)
        extra = {**first.extra, "path": path} if path else dict(first.extra)
        found = first.replace(detail=detail, count=max(peak or 0, first.count), extra=extra)
        out.append(_renumber(found, offset))
    return out


def _renumber(finding: Finding, offset: int) -> Finding:
    """Invocation numbers relative to the soak, for a guard that had run before it."""
    if not offset:
        return finding
    return finding.replace(
        first_invocation=max(1, finding.first_invocation - offset),
        invocation=max(1, finding.invocation - offset),
    )


def _path(grew_at: Iterable[int], outcomes: Mapping[int, tuple[str, str | None]]) -> str | None:
    """ "only when the handler raised KeyError (events: #3, #7)" when the growth says so."""
    seen = [outcomes[n] for n in grew_at if n in outcomes]
    if not seen:
        return None
    raised = Counter(error for _, error in seen if error)
    labels = sorted({label for label, _ in seen})
    if len(raised) == 1 and sum(raised.values()) == len(seen):
        (error,) = raised
        return f"only in invocations that raised {error} (events: {_few(labels)})"
    if raised:
        ok = len(seen) - sum(raised.values())
        kinds = ", ".join(f"{n} raised {e}" for e, n in raised.items())
        return f"grew in {len(seen)} invocations: {kinds}, {ok} returned"
    all_labels = {label for label, _ in outcomes.values()}
    if len(labels) < len(all_labels):
        return f"only for events {_few(labels)}"
    return None


def _few(labels: list[str], most: int = 5) -> str:
    shown = ", ".join(labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")

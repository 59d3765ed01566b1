"""The soak loop: run a handler many times under the guard; gather what outlived it.

Verdicts follow leak hunters' practice: counted resources get zero tolerance after a short
warm-up (``leak_after=1``, ``warmup=1``), threads a bounded grace period, memory a trend over
windows. A finding remembers which invocations grew it, so leaks that happen only on some
paths (the handler raised, a certain event) are reported with that path.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TextIO

from .._constants import DB_CLEANUP
from .._engine import Engine, Invocation
from .._records import Finding, InvocationStats
from ..errors import LeakError
from ..guard import engine_of, guard
from ..policy import Policy
from ._context import FakeLambdaContext
from ._events import labelled
from ._outcomes import Failures, failure_of
from ._progress import Progress
from ._report import SoakReport

__all__ = ["DEFAULT_INVOCATIONS", "soak", "soak_policy"]

DEFAULT_INVOCATIONS = 1500


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

    def observe(invocation: Invocation) -> None:
        collected.extend(invocation.findings)
        stats.append(invocation.stats)

    start_invocation = engine.invocation
    outcomes: dict[int, tuple[str, str | None]] = {}  # invocation -> (event label, error)
    raised = 0
    failures = Failures()
    feed = labelled(events, invocations, seed)
    bar = Progress(progress, invocations)
    started = time.perf_counter()
    done = 0
    with engine.observe(observe, quiet=True):
        try:
            for _, (label, event) in zip(range(invocations), feed, strict=False):
                done += 1
                error = None
                try:
                    failure = failure_of(done, handler(event, context_factory()))
                except LeakError:
                    failure = None  # a strict guard raised what the observer was told
                except Exception as exc:  # noqa: BLE001 - the handler's own errors are counted
                    failure = failure_of(done, exc=exc)
                    raised += 1
                    error = failure.error if failure is not None else type(exc).__name__
                if failure is not None:
                    failures.record(failure)
                outcomes[engine.invocation] = (label, error)
                bar.update(done)
        finally:
            bar.close()
    seconds = time.perf_counter() - started
    return SoakReport(
        handler=name or _describe(handler),
        invocations=done,
        errors=raised,
        findings=_merge(collected, engine, outcomes, start_invocation),
        seconds=seconds,
        error_types=Counter(failures.kinds),
        stats=stats,
        fd_exhausted_at=failures.fd_exhausted_at,
        fd_limit=_soft_fd_limit(),
        failures=failures,
    )


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

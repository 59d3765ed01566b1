"""The soak loop: run a handler many times under the guard; gather what outlived it.

Verdicts follow leak hunters' practice: counted resources get zero tolerance after a short
warm-up (``leak_after=1``, ``warmup=1``), threads a bounded grace period, memory a trend over
windows. A finding remembers which invocations grew it, so leaks that happen only on some
paths (the handler raised, a certain event) are reported with that path.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TextIO

from .. import _health_state
from .._constants import DB_CLEANUP
from .._engine import Engine, Invocation
from .._records import Finding, InvocationStats
from ..errors import ConfigError, LeakError
from ..guard import engine_of, guard
from ..policy import Policy
from ._bounds import DEFAULT_TIMEOUT, MAX_TIMEOUT, InvocationTimeout, deadline
from ._context import FakeLambdaContext
from ._events import labelled
from ._growth import GrowthTrace, bounded_growth, unjudged
from ._outcomes import Failure, Failures, failure_of
from ._progress import Progress
from ._release import Baseline, release
from ._report import SoakReport

__all__ = ["DEFAULT_INVOCATIONS", "check_bounds", "soak", "soak_policy"]

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
    timeout: float = DEFAULT_TIMEOUT,
    fail_fast: bool = False,
    max_seconds: float | None = None,
    release: bool = True,
) -> SoakReport:
    """Run ``handler`` ``invocations`` times and report every leak it showed.

    ``events``: see ``_events.labelled``. A handler that is already guarded is soaked with its
    own engine; any other is guarded here with ``policy`` (default: ``soak_policy()``).
    ``timeout``: each invocation's, in seconds (Lambda's console default, 3 s): the context
    counts down from it and a longer invocation is stopped and fails. ``fail_fast``: stop once
    the soak cannot end clean (a leak found, or an invocation failed). ``max_seconds``: stop
    when this much time has gone by. ``release``: afterwards, put back the process-wide state
    and release what the handler leaked (``_release``), so the caller goes on as before.
    ``progress``: a terminal stream for a progress bar.
    """
    check_bounds(invocations=invocations, timeout=timeout, max_seconds=max_seconds)
    if context_factory is None:
        context_factory = functools.partial(FakeLambdaContext, timeout_s=timeout)
    handler, engine, bounded = _guarded(handler, policy, timeout)
    collected: list[Finding] = []
    stats: list[InvocationStats] = []
    tracing = GrowthTrace(engine)

    def observe(invocation: Invocation) -> None:
        collected.extend(invocation.findings)
        stats.append(invocation.stats)
        tracing.after(invocation)

    start_invocation = engine.invocation
    baseline = Baseline.take() if release else None
    outcomes: dict[int, tuple[str, str | None]] = {}  # invocation -> (event label, error)
    raised = 0
    failures = Failures()
    stopped: str | None = None
    feed = labelled(events, invocations, seed)
    bar = Progress(progress, invocations)
    started = time.perf_counter()
    done = 0
    # the soaked handler is not the environment's: its health is in the report, not the file
    with engine.observe(observe, quiet=True, soak=True), _health_state.paused():
        try:
            for _, (label, event) in zip(range(invocations), feed, strict=False):
                done += 1
                failure, error = _invoke(handler, event, context_factory, bounded, done)
                if failure is not None:
                    failures.record(failure)
                raised += error is not None
                outcomes[engine.invocation] = (label, error)
                bar.update(done)
                if done < invocations:
                    stopped = _stop(fail_fast, bool(collected), failures, max_seconds, started)
                    if stopped:
                        break
        except KeyboardInterrupt:
            stopped = "interrupted"  # what ran so far is still reported
        finally:
            bar.close()
            tracing.finish()  # tracemalloc off again, whatever happened
    seconds = time.perf_counter() - started
    merged = _merge(collected, engine, outcomes, start_invocation)
    released = None
    if baseline is not None:
        released = _released(baseline, merged)
    findings, bounded_notes = bounded_growth(merged, engine, outcomes)
    findings = tracing.explain(findings)
    return SoakReport(
        handler=name or _describe(handler),
        invocations=done,
        errors=raised,
        findings=findings,
        notes=unjudged(engine, done, findings) + bounded_notes,
        seconds=seconds,
        error_types=Counter(failures.kinds),
        stats=stats,
        fd_exhausted_at=failures.fd_exhausted_at,
        fd_limit=_soft_fd_limit(),
        failures=failures,
        planned=invocations,
        stopped=stopped,
        timeout=timeout,
        released=released,
    )


def _released(baseline: Baseline, findings: list[Finding]) -> list[str]:
    """What ``release`` did; its own fault is one line, never the soak's failure."""
    try:
        return release(baseline, {finding.kind for finding in findings})
    except Exception as exc:  # noqa: BLE001 - fail open: the report is still true
        return [f"release failed: {type(exc).__name__}: {exc}"]


def _guarded(
    handler: Callable[..., Any], policy: Policy | None, timeout: float
) -> tuple[Callable[..., Any], Engine, Callable[[], contextlib.AbstractContextManager[None]]]:
    """The handler guarded (unless it is already), its engine, and the timer around a call."""
    engine = engine_of(handler)
    if engine is not None:  # its own guard runs inside the timer: the best from outside
        return handler, engine, functools.partial(deadline, timeout)
    handler = guard(_timed(handler, timeout), policy=policy or soak_policy())
    engine = engine_of(handler)
    assert engine is not None
    return handler, engine, contextlib.nullcontext


def _invoke(
    handler: Callable[..., Any],
    event: Any,
    context_factory: Callable[[], Any],
    bounded: Callable[[], contextlib.AbstractContextManager[None]],
    number: int,
) -> tuple[Failure | None, str | None]:
    """One invocation: how it failed, if it did, and what it raised, if it did."""
    try:
        with bounded():
            return failure_of(number, handler(event, context_factory())), None
    except LeakError:
        return None, None  # a strict guard raised what the observer was told
    except (Exception, InvocationTimeout) as exc:  # noqa: BLE001 - the handler's, counted
        failure = failure_of(number, exc=exc)
        return failure, failure.error if failure is not None else type(exc).__name__


def check_bounds(
    *, invocations: int, timeout: float = DEFAULT_TIMEOUT, max_seconds: float | None = None
) -> None:
    """A ``ConfigError`` naming the bound that is out of range."""
    if isinstance(invocations, bool) or not isinstance(invocations, int) or invocations < 1:
        raise ConfigError(f"invocations={invocations!r}: must be a whole number of at least 1")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ConfigError(f"timeout={timeout!r}: must be in (0, {MAX_TIMEOUT:g}] seconds")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"max_seconds={max_seconds!r}: must be above 0 seconds")


def _timed(handler: Callable[..., Any], timeout: float) -> Callable[..., Any]:
    """``handler`` stopped at its timeout; the guard around it sees a failed invocation."""
    if inspect.iscoroutinefunction(handler):
        return handler  # an async handler's timer would stop the event loop, not the handler

    @functools.wraps(handler, updated=())
    def timed(event: Any, context: Any) -> Any:
        with deadline(timeout):
            return handler(event, context)

    return timed


def _stop(
    fail_fast: bool,
    found: bool,
    failures: Failures,
    max_seconds: float | None,
    started: float,
) -> str | None:
    """Why the soak stops before its last invocation, if it does."""
    if fail_fast and (found or failures.count):
        return "fail-fast: " + ("a leak was found" if found else "an invocation failed")
    if max_seconds is not None and time.perf_counter() - started >= max_seconds:
        return f"max-seconds: {max_seconds:g} s have gone by"
    return None


def _soft_fd_limit() -> int | None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _describe(handler: Callable[..., Any]) -> str:
    seen = {id(handler)}
    while (inner := getattr(handler, "__wrapped__", None)) is not None and id(inner) not in seen:
        seen.add(id(inner))
        handler = inner
    named = handler if hasattr(handler, "__qualname__") else type(handler)
    return f"{named.__module__}:{named.__qualname__}"


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
        # the detail as it is now ("grew: 1499 -> 1500 items"), the peak count
        history = engine.history(key)
        detail = history.latest if history else first.detail
        if first.kind == "global":  # the total since it first grew, not the last step
            detail = _total_growth(first.detail, detail, _renumber(first, offset))
        peak = history.peak if history else None
        path = _path(history.grew_at if history else [], outcomes)
        extra = {**first.extra, "path": path} if path else dict(first.extra)
        site = first.site or (history.site if history else None)  # a line found later
        found = first.replace(
            detail=detail, count=max(peak or 0, first.count), extra=extra, site=site
        )
        out.append(_renumber(found, offset))
    return out


_GREW = re.compile(r"^(?P<what>.+) grew: (?P<old>[\d,]+) -> (?P<new>[\d,]+) items$")


def _total_growth(first_detail: str, latest: str, first: Finding) -> str:
    """ "app.CACHE grew: 1 -> 300 items since invocation 1" from the first step and the last."""
    was, now = _GREW.match(first_detail), _GREW.match(latest)
    if was is None or now is None or was["what"] != now["what"]:
        return latest
    return (
        f"{now['what']} grew: {was['old']} -> {now['new']} items "
        f"since invocation {first.first_invocation}"
    )


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

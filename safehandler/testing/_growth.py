"""What a soak adds to its findings about growth: the lines that allocate, growth that stopped
(a note, not a leak), and what memory could not be judged yet."""

from __future__ import annotations

import tracemalloc
from collections.abc import Mapping
from typing import Any

from .._engine import Engine, Invocation
from .._records import Finding
from ..probes.memory import TRACE_FRAMES, growth_sites
from ..verdicts import stopped_growing

__all__ = ["GrowthTrace", "bounded_growth", "unjudged"]


class GrowthTrace:
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


def bounded_growth(
    findings: list[Finding], engine: Engine, outcomes: Mapping[int, tuple[str, str | None]]
) -> tuple[list[Finding], list[str]]:
    """The findings whose growth stopped once the events repeated: notes, not a failing
    verdict (``verdicts.stopped_growing``)."""
    kept, told_notes = [], []
    now = engine.invocation
    for finding in findings:
        history = engine.history(finding.group) if finding.group is not None else None
        last = history.last_grew if history else 0
        grew_with = {outcomes[n][0] for n in history.grew_at if n in outcomes} if history else set()
        seen_since = {label for n, (label, _) in outcomes.items() if n > last}
        if history and stopped_growing(finding, last, now, grew_with, seen_since):
            told = str(finding).rsplit(", reported at invocation", 1)[0]
            told_notes.append(
                f"bounded, not a leak: {told}; it stopped growing at invocation "
                f"{last - (now - len(outcomes)):,} and the same events did not grow it in the "
                f"{now - last:,} invocations since"
            )
        else:
            kept.append(finding)
    return kept, told_notes


def _site_dict(filename: str, lineno: int, size: int) -> dict[str, Any]:
    return {"file": filename, "line": lineno, "bytes": size}


def unjudged(engine: Engine, invocations: int, findings: list[Finding]) -> list[str]:
    """What the verdict could not say: memory not judged yet."""
    told = []
    if "memory" in engine.probes and not any(f.kind == "memory" for f in findings):
        unjudged = engine.judge.trend.unjudged(invocations)
        if unjudged:
            told.append(unjudged)
    return told

"""The soak report: counts, findings and their paths, as text and as JSON.

``SoakReport`` is what ``soak()`` and ``soak_isolated()`` return; its ``to_dict`` is the
CLI's ``--json`` shape, and ``from_dict`` reads back what an isolated soak's child wrote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._records import Finding, InvocationStats, display_path, plural
from .._redact import redact_obj, redact_text
from ..report import advice
from ._limits import LAMBDA_FD_LIMIT
from ._outcomes import CLEAN, FAILING, Failures, verdict_of

__all__ = ["SoakReport"]


@dataclass
class SoakReport:
    handler: str
    invocations: int
    errors: int
    findings: list[Finding]
    seconds: float
    error_types: Counter[str] = field(default_factory=Counter)
    stats: list[InvocationStats] = field(default_factory=list, repr=False)
    fd_exhausted_at: int | None = None  # the first invocation that failed with EMFILE
    fd_limit: int | None = None  # the soft RLIMIT_NOFILE the soak ran under
    # what the verdict does not fail on but a reader should know: memory not judged yet,
    # bounded growth
    notes: list[str] = field(default_factory=list)
    failures: Failures = field(default_factory=Failures)  # raised or returned an error
    planned: int | None = None  # the invocations asked for
    stopped: str | None = None  # why it stopped before them: fail-fast, max-seconds, interrupted
    timeout: float | None = None  # each invocation's timeout, seconds
    isolated: bool = False  # soaked in a child process, under fd_limit
    released: list[str] | None = None  # what an in-process soak released (None: not tried)

    @property
    def verdict(self) -> str:
        """``leak`` (findings), ``failing`` (invocations failed, nothing leaked) or ``clean``."""
        return verdict_of(len(self.findings), self.failures.count)

    @property
    def clean(self) -> bool:
        return self.verdict == CLEAN

    @property
    def failed(self) -> int:
        """Invocations that raised or returned an error response."""
        return self.failures.count

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape; keys may be added, never renamed. Redacted."""
        out = {
            "handler": self.handler,
            "invocations": self.invocations,
            "errors": self.errors,
            "error_types": dict(self.error_types),
            "verdict": self.verdict,
            "failed": self.failed,
            "failures": self.failures.to_dict(self.invocations),
            "planned": self.planned,
            "stopped": self.stopped,
            "timeout": self.timeout,
            "released": self.released,
            "isolated": self.isolated,
            "seconds": round(self.seconds, 3),
            "fd_limit": self.fd_limit,
            "fd_exhausted_at": self.fd_exhausted_at,
            "findings": [finding.to_dict() for finding in self.findings],
            "notes": list(self.notes),
            "stats": [list(row) for row in self.stats],
        }
        return dict(redact_obj(out))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SoakReport:
        """Rebuild a report written by ``to_dict`` (an isolated soak's child writes one)."""
        return cls(
            handler=data["handler"],
            invocations=data["invocations"],
            errors=data["errors"],
            findings=[Finding.from_dict(item) for item in data["findings"]],
            seconds=data.get("seconds", 0.0),
            error_types=Counter(data.get("error_types", {})),
            stats=[InvocationStats(*row) for row in data.get("stats", [])],
            fd_exhausted_at=data.get("fd_exhausted_at"),
            fd_limit=data.get("fd_limit"),
            notes=list(data.get("notes", [])),
            failures=Failures.from_dict(data.get("failures")),
            planned=data.get("planned"),
            stopped=data.get("stopped"),
            timeout=data.get("timeout"),
            released=data.get("released"),
            isolated=data.get("isolated", False),
        )

    def __str__(self) -> str:
        return redact_text(self._text())

    def _text(self) -> str:
        rate = self.invocations / self.seconds if self.seconds else 0.0
        head = (
            f"safehandler soak {self.handler}: {self.invocations:,} "
            f"{plural('invocation', self.invocations)} in "
            f"{self.seconds:.2f} s ({rate:,.0f}/s), {self.errors:,} raised"
        )
        returned = self.failed - self.errors
        if returned > 0:
            head += f", {returned:,} returned an error"
        if self.error_types:
            head += " (" + ", ".join(f"{n:,} {k}" for k, n in self.error_types.items()) + ")"
        lines = [head]
        if self.stopped:
            planned = f" of {self.planned:,}" if self.planned else ""
            lines.append(f"stopped after invocation {self.invocations:,}{planned}: {self.stopped}")
        if self.stats:
            lines += _counters_lines(self.stats, self.fd_limit)
        if self.fd_exhausted_at is not None:
            limit = f" (RLIMIT_NOFILE {self.fd_limit:,})" if self.fd_limit else ""
            lines.append(
                f"EMFILE at invocation {self.fd_exhausted_at:,}: the process ran out of file "
                f"descriptors{limit}; every later invocation that opens one fails"
            )
        lines += [f"note: {note}" for note in self.notes]
        first = self.failures.first
        if first is not None:
            lines.append(
                f"failing: first at invocation {first.invocation:,} ({first}); "
                + self.failures.evolution(self.invocations)
            )
        if self.released:
            lines.append("released after the soak: " + "; ".join(self.released))
        if self.clean:
            lines.append("verdict: clean, nothing outlived its invocation")
            return "\n".join(lines)
        if self.verdict == FAILING:
            lines.append(
                f"verdict: FAILING, {self.failed:,} of {self.invocations:,} "
                f"{plural('invocation', self.invocations)} failed"
            )
            return "\n".join(lines)
        count = len(self.findings)
        lines.append(f"verdict: LEAK, {count} {plural('finding', count)}")
        for finding in self.findings:
            lines.append(f"  [{finding.kind}] {finding}")
            path = finding.extra.get("path")
            if path:
                lines.append(f"      {path}")
            lines += _allocation_lines(finding)
            lines.append(f"      fix: {advice(finding)}")
        return "\n".join(lines)


def _allocation_lines(finding: Finding) -> list[str]:
    if "allocated_at" not in finding.extra:
        return []
    sites = finding.extra["allocated_at"]
    if not sites:
        return [
            "      allocated at: no Python allocation grew (tracemalloc): the growth is native "
            "memory, a C extension's or the allocator's"
        ]
    lines = []
    for site in sites:
        size = site["bytes"]
        amount = f"{size / 2**20:,.1f} MiB" if size >= 2**20 else f"{size / 1024:,.0f} KiB"
        lines.append(f"      allocated at {display_path(site['file'])}:{site['line']}: +{amount}")
    return lines


def _counters_lines(stats: list[InvocationStats], fd_limit: int | None) -> list[str]:
    def ends(column: str) -> tuple[InvocationStats, InvocationStats] | None:
        # a probe switched off (by EMFILE, say) leaves None: use the last row that has it
        rows = [row for row in stats if getattr(row, column) is not None]
        return (rows[0], rows[-1]) if rows else None

    parts, lines = [], []
    if fds := ends("fds"):
        first, last = fds
        opened, now = first.fds or 0, last.fds or 0
        parts.append(f"open fds {opened:,} -> {now:,}")
        if now > opened and last.invocation > first.invocation:
            per_call = (now - opened) / (last.invocation - first.invocation)
            lines.append(
                f"at {per_call:.2g} fd per invocation, "
                + _projection(first.invocation, opened, per_call, fd_limit)
            )
    if threads := ends("threads"):
        parts.append(f"threads {threads[0].threads} -> {threads[1].threads}")
    if (db := ends("db")) and (db[0].db or db[1].db):
        parts.append(f"DB connections left open {db[0].db} -> {db[1].db}")
    if rss := ends("rss"):
        first_rss, last_rss = rss[0].rss or 0, rss[1].rss or 0
        parts.append(f"RSS {first_rss / 2**20:.1f} -> {last_rss / 2**20:.1f} MiB")
    head = f"after invocation {stats[0].invocation} -> {stats[-1].invocation:,}: "
    return [head + ", ".join(parts), *lines]


def _projection(start: int, opened: int, per_call: float, fd_limit: int | None) -> str:
    """Where the fds run out: under the limit the soak ran under, and Lambda's if it differs."""

    def near(limit: int) -> str:
        return f"invocation {max(1, int(start + (limit - opened) / per_call)):,}"

    lambdas = f"Lambda's {LAMBDA_FD_LIMIT:,} fds run out near {near(LAMBDA_FD_LIMIT)}"
    if fd_limit is None or fd_limit == LAMBDA_FD_LIMIT:
        return lambdas
    return f"this soak's RLIMIT_NOFILE of {fd_limit:,} runs out near {near(fd_limit)}; " + lambdas

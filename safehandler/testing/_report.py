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

    @property
    def verdict(self) -> str:
        return "leak" if self.findings else "clean"

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape; keys may be added, never renamed. Redacted."""
        out = {
            "handler": self.handler,
            "invocations": self.invocations,
            "errors": self.errors,
            "error_types": dict(self.error_types),
            "verdict": self.verdict,
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
        )

    def __str__(self) -> str:
        return redact_text(self._text())

    def _text(self) -> str:
        rate = self.invocations / self.seconds if self.seconds else 0.0
        head = (
            f"safehandler soak {self.handler}: {self.invocations:,} invocations in "
            f"{self.seconds:.2f} s ({rate:,.0f}/s), {self.errors:,} raised"
        )
        if self.error_types:
            head += " (" + ", ".join(f"{n:,} {k}" for k, n in self.error_types.items()) + ")"
        lines = [head]
        if self.stats:
            lines += _counters_lines(self.stats)
        if self.fd_exhausted_at is not None:
            limit = f" (RLIMIT_NOFILE {self.fd_limit:,})" if self.fd_limit else ""
            lines.append(
                f"EMFILE at invocation {self.fd_exhausted_at:,}: the process ran out of file "
                f"descriptors{limit}; every later invocation that opens one fails"
            )
        lines += [f"note: {note}" for note in self.notes]
        if self.clean:
            lines.append("verdict: clean, nothing outlived its invocation")
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


def _counters_lines(stats: list[InvocationStats], fd_limit: int = LAMBDA_FD_LIMIT) -> list[str]:
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
            runs_out = first.invocation + (fd_limit - opened) / per_call
            lines.append(
                f"at {per_call:.2g} fd per invocation, Lambda's {fd_limit:,} fds run out near "
                f"invocation {max(1, int(runs_out)):,}"
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

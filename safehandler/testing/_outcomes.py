"""What each invocation's outcome says, and what they say together: the soak's verdict.

An invocation fails when the handler raises or returns an error response: API Gateway and
ALB's ``statusCode >= 500`` (what an ASGI adapter such as Mangum turns an exception into),
SQS's partial batch response with ``batchItemFailures``. A handler that fails is no better
than one that leaks, so a soak with failures is not clean; a leak, when there is one, is
named first because it usually explains the failures (EMFILE after the fds ran out).
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._redact import redact_text

__all__ = [
    "CLEAN",
    "FAILING",
    "LEAK",
    "VERDICTS",
    "Failure",
    "Failures",
    "failure_of",
    "fd_exhaustion",
    "verdict_of",
]

CLEAN, LEAK, FAILING = "clean", "leak", "failing"
VERDICTS = (CLEAN, LEAK, FAILING)

_FD_EXHAUSTED = (errno.EMFILE, errno.ENFILE)
# what drivers say when they wrap an EMFILE in their own words
_FD_MESSAGES = ("too many open files", "emfile", "enfile")
# SQLite names no errno: this is what it says when it cannot get a descriptor
_SQLITE_CANNOT_OPEN = "unable to open database file"
_MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class Failure:
    """One failing invocation: what it raised or returned, redacted."""

    invocation: int
    error: str  # "KeyError", "OSError[EMFILE]", "HTTP 500", "batchItemFailures", "Timeout"
    message: str
    fd_exhausted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"invocation": self.invocation, "error": self.error, "message": self.message}

    def __str__(self) -> str:
        return f"{self.error}: {self.message}" if self.message else self.error


def verdict_of(findings: int, failed: int) -> str:
    """``leak`` over ``failing`` over ``clean``."""
    if findings:
        return LEAK
    return FAILING if failed else CLEAN


def failure_of(
    invocation: int, result: Any = None, exc: BaseException | None = None
) -> Failure | None:
    """The failure an invocation's outcome shows, or None when it succeeded."""
    if exc is not None:
        exhausted = fd_exhaustion(exc)
        code = getattr(exc, "errno", None) if exhausted is None else exhausted
        name = type(exc).__name__
        if isinstance(code, int) and code in errno.errorcode:
            name += f"[{errno.errorcode[code]}]"
        return Failure(invocation, name, _message(str(exc)), exhausted is not None)
    if not isinstance(result, Mapping):
        return None
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, int) and not isinstance(status, bool) and status >= 500:
        body = result.get("body")
        return Failure(invocation, f"HTTP {status}", _message(body if body is not None else ""))
    items = result.get("batchItemFailures")
    if isinstance(items, (list, tuple)) and items:
        ids = [str(item.get("itemIdentifier")) for item in items if isinstance(item, Mapping)]
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        text = f"{len(items)} {'record' if len(items) == 1 else 'records'} failed ({shown})"
        return Failure(invocation, "batchItemFailures", _message(text))
    return None


def _message(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    return redact_text(text)


# -- fd exhaustion, whatever exception carries it -------------------------------------


def fd_exhaustion(exc: BaseException) -> int | None:
    """EMFILE or ENFILE when ``exc`` comes from running out of file descriptors: an errno
    anywhere in its chain (``__cause__``, ``__context__``, a driver's ``orig`` or
    ``original_exception``), a driver's message that quotes it, or SQLite's "unable to open
    database file" while the fd table is full. None otherwise."""
    sqlite_cannot_open = False
    for link in _chain(exc):
        code = getattr(link, "errno", None)
        if code in _FD_EXHAUSTED:
            return int(code)
        text = str(link).lower()
        if any(words in text for words in _FD_MESSAGES):
            return errno.ENFILE if "enfile" in text else errno.EMFILE
        sqlite_cannot_open = sqlite_cannot_open or _SQLITE_CANNOT_OPEN in text
    if sqlite_cannot_open and fd_table_full():
        return errno.EMFILE
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        link = pending.pop()
        if not isinstance(link, BaseException) or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        pending += [
            link.__cause__,
            link.__context__,
            getattr(link, "orig", None),  # SQLAlchemy's DBAPIError
            getattr(link, "original_exception", None),  # PyMySQL's connect error
        ]


def fd_table_full(spare: int = 3) -> bool:
    """Whether the process has fewer than ``spare`` descriptors left (checked by taking them:
    a listing of /proc/self/fd would need one itself)."""
    taken: list[int] = []
    try:
        taken.extend(os.open(os.devnull, os.O_RDONLY) for _ in range(spare))
    except OSError as exc:
        return exc.errno in _FD_EXHAUSTED
    finally:
        for fd in taken:
            os.close(fd)
    return False


# -- all the failures of a soak -------------------------------------------------------


@dataclass
class Failures:
    """Every failing invocation of a soak, kept as runs of consecutive invocations."""

    count: int = 0
    first: Failure | None = None
    runs: list[list[int]] = field(default_factory=list)  # [first, last] per run
    kinds: Counter[str] = field(default_factory=Counter)
    fd_exhausted_at: int | None = None  # the first invocation that failed for want of fds

    def record(self, failure: Failure) -> None:
        self.count += 1
        self.kinds[failure.error] += 1
        if self.first is None:
            self.first = failure
        if failure.fd_exhausted and self.fd_exhausted_at is None:
            self.fd_exhausted_at = failure.invocation
        if self.runs and self.runs[-1][1] == failure.invocation - 1:
            self.runs[-1][1] = failure.invocation
        else:
            self.runs.append([failure.invocation, failure.invocation])

    def evolution(self, invocations: int) -> str:
        """How the failures went: "failures began at invocation 40, every invocation since"."""
        if not self.runs:
            return "no invocation failed"
        (start, _), end = self.runs[0], self.runs[-1][1]
        if len(self.runs) == 1:
            if end == invocations:
                if start == 1:
                    return "every invocation failed"
                return f"failures began at invocation {start:,}, every invocation since"
            if start == end:
                return f"only invocation {start:,} failed"
            return f"invocations {start:,} to {end:,} failed, none since"
        tail = self.runs[-1]
        since = (
            f"every invocation since {tail[0]:,}"
            if tail[1] == invocations
            else f"the last at {end:,}"
        )
        return (
            f"{self.count:,} of {invocations:,} invocations failed in {len(self.runs):,} runs: "
            f"the first at {start:,}, {since}"
        )

    def to_dict(self, invocations: int) -> dict[str, Any]:
        return {
            "count": self.count,
            "first": None if self.first is None else self.first.to_dict(),
            "evolution": self.evolution(invocations),
            "runs": [list(run) for run in self.runs],
            "kinds": dict(self.kinds),
            "fd_exhausted_at": self.fd_exhausted_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Failures:
        if not data:
            return cls()
        first = data.get("first")
        fd_exhausted_at = data.get("fd_exhausted_at")
        return cls(
            count=data.get("count", 0),
            first=None
            if first is None
            else Failure(
                first["invocation"],
                first["error"],
                first.get("message", ""),
                first["invocation"] == fd_exhausted_at,
            ),
            runs=[list(run) for run in data.get("runs", [])],
            kinds=Counter(data.get("kinds", {})),
            fd_exhausted_at=fd_exhausted_at,
        )

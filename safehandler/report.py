"""Findings and how they are told: readable text, ``to_dict()`` for JSON, one log line each."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Hashable, Mapping
from typing import Any, Literal

from ._constants import LOGGER_NAME
from .sites import Site

__all__ = ["Finding", "Resource", "log_event", "log_finding"]

Kind = Literal["fd", "socket", "db_connection", "thread", "process", "global", "memory"]

_IMMEDIATE_KINDS = frozenset({"thread", "process"})

# Plural nouns for the counted text: "37 sockets", "1 file".
_PLURALS = {
    "process": "processes",
    "child process": "child processes",
    "sys.modules entry": "sys.modules entries",
    "sys.path entry": "sys.path entries",
    "working directory": "working directories",
}


def plural(noun: str, count: int) -> str:
    return noun if count == 1 else _PLURALS.get(noun, noun + "s")


class Resource:
    """One thing that outlived an invocation: an fd, a socket, a thread."""

    __slots__ = ("detail", "invocation", "key", "kind", "noun", "site")

    def __init__(  # noqa: PLR0917 - the facts of one resource, in the order probes know them
        self,
        kind: Kind,
        key: Hashable,  # identity within its probe: fd number, thread ident
        noun: str,  # "file", "pipe", "socket", "thread"
        detail: str,  # "open on /tmp/x.log", "to 127.0.0.1:3306"
        site: Site | None,
        invocation: int,  # the invocation that created it
    ) -> None:
        self.kind = kind
        self.key = key
        self.noun = noun
        self.detail = detail
        self.site = site
        self.invocation = invocation

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.kind!r}, {self.key!r}, {self.noun!r}, "
            f"{self.detail!r}, {self.site!r}, {self.invocation!r})"
        )

    @property
    def group(self) -> tuple[Hashable, ...]:
        """Resources of one group are counted together: same kind and noun, same site."""
        # Without a site, the noun and detail are all we have to tell sources apart.
        return (self.kind, self.noun, self.site or self.detail)

    @property
    def immediate(self) -> bool:
        """A finding at its first appearance, whatever ``leak_after`` says: a thread or child
        process still running resumes inside a later invocation."""
        return self.kind in _IMMEDIATE_KINDS


class Finding:
    """A suspected leak: how many, of what, created where, since when. Immutable."""

    __slots__ = (
        "count",
        "detail",
        "extra",
        "first_invocation",
        "group",
        "invocation",
        "kind",
        "noun",
        "site",
    )
    kind: Kind
    count: int
    site: Site | None
    first_invocation: int
    detail: str
    noun: str
    invocation: int  # the invocation at which it was reported
    extra: Mapping[str, Any]
    group: Hashable  # the tracker's: findings of one group are one leak, reported as it grows

    def __init__(
        self,
        kind: Kind,
        count: int,
        site: Site | None,
        first_invocation: int,
        detail: str,
        *,
        noun: str = "",
        invocation: int = 0,
        extra: Mapping[str, Any] | None = None,
        group: Hashable = None,
    ) -> None:
        fields = {
            "kind": kind,
            "count": count,
            "site": site,
            "first_invocation": first_invocation,
            "detail": detail,
            "noun": noun,
            "invocation": invocation,
            "extra": {} if extra is None else extra,
            "group": group,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Finding is immutable: use replace(), not .{name} =")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Finding is immutable: cannot delete .{name}")

    def _compared(self) -> tuple[Any, ...]:
        # the group is bookkeeping: two findings that say the same are equal
        return (
            self.kind,
            self.count,
            self.site,
            self.first_invocation,
            self.detail,
            self.noun,
            self.invocation,
            self.extra,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared()[:-1])

    def __repr__(self) -> str:
        return (
            f"Finding(kind={self.kind!r}, count={self.count!r}, site={self.site!r}, "
            f"first_invocation={self.first_invocation!r}, detail={self.detail!r}, "
            f"noun={self.noun!r}, invocation={self.invocation!r}, extra={self.extra!r})"
        )

    def replace(self, **changes: Any) -> Finding:
        """A copy with these fields changed."""
        return _finding_from(self._fields() | changes)

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle
        return (_finding_from, (self._fields(),))

    def __str__(self) -> str:
        if self.kind == "memory":
            return self.detail
        if self.kind == "global":
            times = "once" if self.count == 1 else f"in {self.count:,} invocations"
            text = f"{self.detail} ({self.noun}, changed {times}"
            if self.count > 1:
                text += f" since invocation {self.first_invocation}"
            return text + f"), reported at invocation {self.invocation}"
        noun = plural(self.noun or self.kind, self.count)
        where = f"created at {self.site}" if self.site else "created at an unknown site"
        text = f"{self.count:,} {noun} {self.detail} {where}".replace("  ", " ")
        since = f"first retained at invocation {self.first_invocation}"
        if self.invocation:
            since += f", reported at invocation {self.invocation}"
        return f"{text}, {since}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "site": self.site.location if self.site else None,
            "function": self.site.function if self.site else None,
            "via": self.site.via if self.site else None,
            "called_from": self.site.called_from if self.site else None,
            "count": self.count,
            "first_invocation": self.first_invocation,
            "invocation": self.invocation,
            "detail": str(self),
            "noun": self.noun,
            "what": self.detail,
            **self.extra,
        }


def _finding_from(fields: dict[str, Any]) -> Finding:
    return Finding(**fields)


_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_KEY_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token)[\"']?\s*[=:]\s*[\"']?)[^\s,;&\"')}]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Hide passwords in DSNs (``user:***@host``) and ``password=...`` pairs."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEY_PASSWORD.sub(r"\g<head>***", text)


def _is_powertools(logger: Any) -> bool:
    return type(logger).__module__.startswith("aws_lambda_powertools")


def log_event(logger: Any, event: str, message: str, fields: Mapping[str, Any]) -> None:
    """One structured line: a JSON object on stdlib logging, ``extra`` keys on Powertools."""
    if logger is None:
        logger = logging.getLogger(LOGGER_NAME)
    payload = {"event": event, **fields}
    if _is_powertools(logger):
        logger.warning(message, extra={"safehandler": payload})
    else:
        logger.warning(json.dumps({"message": message, "safehandler": payload}, default=str))


def log_finding(logger: Any, finding: Finding) -> None:
    fields = finding.to_dict()
    del fields["detail"]  # it is the message
    log_event(logger, "safehandler.leak", f"safehandler: {finding}", fields)

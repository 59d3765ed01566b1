"""The value types every part of safehandler passes around. Standard library only.

``Site`` (a line of user code), ``Creation`` (a resource created while an invocation ran),
``Handle`` (a database object a driver integration saw), ``Resource`` (something that outlived
an invocation), ``Delta`` (what a probe saw appear and go), ``Finding`` (a suspected leak) and
``InvocationStats`` (the counters after one invocation). The records that cross a process
boundary (an isolated soak's child writes its report as JSON) have ``to_dict()`` and
``from_dict()``, so nothing parses a record back out of its display text.

The nouns of global state live here too: the globals probe says what changed, the verdicts
decide what that means.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, Literal, NamedTuple

    Kind = Literal["fd", "socket", "db_connection", "thread", "process", "global", "memory"]
    # "fd": one made by a call the audit hook does not see (os.pipe, os.memfd_create, an epoll)
    CreationKind = Literal["file", "socket", "thread", "process", "atexit", "fd"]
else:
    from ._tuple import NamedTuple

__all__ = [
    "SHARED_STATE_NOUNS",
    "Creation",
    "Delta",
    "Finding",
    "Handle",
    "InvocationStats",
    "Owner",
    "PastRecycle",
    "Resource",
    "Site",
    "plural",
]


# -- where ------------------------------------------------------------------------------


def display_path(filename: str) -> str:
    """``filename`` relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive, on Windows
        return filename
    return filename if relative.startswith(os.pardir) else relative


class Site(NamedTuple):
    """A line of user code that created a resource."""

    filename: str
    lineno: int
    function: str
    via: str | None = None
    # the next frame of user code outward, when the site is a helper: (filename, line, function)
    caller: tuple[str, int, str] | None = None
    # for a resource an object opened lazily (a client's socket, an executor's thread), the
    # site is where the object was made, and this is the line that first used it
    first_use: tuple[str, int, str] | None = None

    @property
    def location(self) -> str:
        """``path:line``, the path relative to the working directory when it is below it."""
        return f"{display_path(self.filename)}:{self.lineno}"

    @property
    def called_from(self) -> str | None:
        if self.caller is None:
            return None
        filename, lineno, function = self.caller
        return f"{display_path(filename)}:{lineno} in {function}"

    @property
    def first_used_at(self) -> str | None:
        if self.first_use is None:
            return None
        filename, lineno, function = self.first_use
        return f"{display_path(filename)}:{lineno} in {function}"

    def __str__(self) -> str:
        text = f"{self.location} in {self.function}"
        if self.via:
            text += f" (via {self.via})"
        if self.caller:
            text += f", called from {self.called_from}"
        if self.first_use:
            text += f", first used at {self.first_used_at}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.filename,
            "line": self.lineno,
            "function": self.function,
            "via": self.via,
            "caller": _frame_dict(self.caller),
            "first_use": _frame_dict(self.first_use),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Site:
        return cls(
            data["file"],
            int(data["line"]),
            data["function"],
            data.get("via"),
            _frame_from(data.get("caller")),
            _frame_from(data.get("first_use")),
        )


def _frame_dict(frame: tuple[str, int, str] | None) -> dict[str, Any] | None:
    if frame is None:
        return None
    filename, lineno, function = frame
    return {"file": filename, "line": lineno, "function": function}


def _frame_from(data: Mapping[str, Any] | None) -> tuple[str, int, str] | None:
    return (data["file"], int(data["line"]), data["function"]) if data else None


class Owner(NamedTuple):
    """An object that opens resources lazily: a client, a session, an executor, a pool."""

    kind: str  # "requests.Session", "concurrent.futures.ThreadPoolExecutor"
    site: Site | None  # where it was made
    serial: int  # the scope (invocation) that made it; 0: none (at import, at init)
    # its fds are one resource, told as its own (an event loop's epoll and self-pipe sockets)
    bundles: bool = False

    def attribute(self, use: Site | None) -> Site | None:
        """Where to fix what it opened at ``use``: its making, with that first use beside it
        (``use`` itself when where it was made is not known)."""
        if self.site is None:
            return use
        first_use = None  # (none beside it when it is the same line: made and used at once)
        if use is not None and (use.filename, use.lineno) != (self.site.filename, self.site.lineno):
            first_use = (use.filename, use.lineno, use.function)
        return self.site._replace(via=self.kind, first_use=first_use)


# -- what was created -------------------------------------------------------------------


class Creation(NamedTuple):
    """One resource created while an invocation ran."""

    kind: CreationKind
    site: Site | None
    ref: Any  # weakref to the socket or thread; the path for files
    detail: str = ""
    owner: Owner | None = None  # the object that opened it, when one is known

    @property
    def attributed_site(self) -> Site | None:
        """Where to fix it: the owner's making, with this first use beside it; else the site."""
        return self.site if self.owner is None else self.owner.attribute(self.site)


class Handle:
    """One thing a database driver opened: a connection, a checkout, a transaction, an engine.

    The integrations build these; the DB probe turns the ones still open at the end of an
    invocation into resources and closes them when the verdict says so.
    """

    __slots__ = (
        "close",
        "detail",
        "invocation",
        "is_open",
        "last_used",
        "noun",
        "ref",
        "rollback",
        "scope",
        "site",
        "superseded",
        "tracks_use",
    )

    def __init__(
        self,
        *,
        noun: str,
        detail: str,
        site: Site | None,
        ref: Callable[[], Any],  # a weak reference
        is_open: Callable[[Any], bool],
        close: Callable[[Any], None],
        rollback: Callable[[Any], bool] | None = None,
    ) -> None:
        self.noun = noun  # "PyMySQL connection", "SQLAlchemy Session", ...
        self.detail = detail  # "to root@127.0.0.1:3306/test", already redacted
        self.site = site
        self.ref = ref
        self.is_open = is_open
        self.close = close  # roll back, then close / return / dispose
        self.rollback = rollback  # roll back if in a transaction; True if it did
        self.invocation = 0
        self.superseded = False  # reported through a handle that owns it
        self.scope = 0  # the serial of the scope (the invocation) that opened it
        # the serial of the last scope that used it, when the driver tells (``tracks_use``):
        # a connection used again by a later invocation is a cache, not a leak
        self.last_used = 0
        self.tracks_use = False

    def __repr__(self) -> str:
        return f"Handle({self.noun!r}, {self.detail!r}, invocation={self.invocation})"

    @property
    def used_again(self) -> bool:
        """Used by an invocation after the one that opened it (known only if ``tracks_use``)."""
        return self.last_used != self.scope

    def alive(self) -> Any:
        """The object, if it is still there and open; else None."""
        obj = self.ref()
        try:
            return obj if obj is not None and self.is_open(obj) else None
        except Exception:  # noqa: BLE001 - a half-torn-down driver object is closed enough
            return None


# -- what outlived an invocation --------------------------------------------------------

# The nouns of global state a probe reports. The handler's own module globals may change
# (lazy initialisation); the shared state is not the handler's to change.
MODULE_GLOBAL = "module global"
MUTABLE_DEFAULT = "mutable default"  # a handler function's default container
ALLOWED_CACHE = "allowed cache"  # an allowed container that grew: judged by its streak
GROWING_CACHE = "growing cache"  # an allowed container that grew too long in a row
STDLIB_ATTRIBUTE = "stdlib attribute"
BUILTIN = "builtin"
MODULES_ENTRY = "sys.modules entry"
ENVIRONMENT_VARIABLE = "environment variable"
PATH_ENTRY = "sys.path entry"
LOGGING_HANDLER = "logging handler"
WORKING_DIRECTORY = "working directory"
SIGNAL_HANDLER = "signal handler"
ATEXIT_CALLBACK = "atexit callback"
SHARED_STATE_NOUNS = frozenset(
    {
        STDLIB_ATTRIBUTE,
        BUILTIN,
        MODULES_ENTRY,
        ENVIRONMENT_VARIABLE,
        PATH_ENTRY,
        LOGGING_HANDLER,
        WORKING_DIRECTORY,
        SIGNAL_HANDLER,
        ATEXIT_CALLBACK,
    }
)
HANDLER_STATE_NOUNS = frozenset({MODULE_GLOBAL, MUTABLE_DEFAULT, ALLOWED_CACHE, GROWING_CACHE})

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
    """One thing that outlived an invocation: an fd, a socket, a thread, a changed global.

    Resources of one ``group`` are counted together. By default that is the same kind and
    noun from the same site; a change to global state is grouped by what changed (its key),
    since its detail (before -> after) differs at every change.
    """

    __slots__ = ("detail", "group", "invocation", "key", "kind", "noun", "site")

    def __init__(  # noqa: PLR0917 - the facts of one resource, in the order probes know them
        self,
        kind: Kind,
        key: Hashable,  # identity within its probe: fd number, thread ident
        noun: str,  # "file", "pipe", "socket", "thread"
        detail: str,  # "open on /tmp/x.log", "to 127.0.0.1:3306"
        site: Site | None,
        invocation: int,  # the invocation that created it
        group: tuple[Hashable, ...] | None = None,
    ) -> None:
        self.kind = kind
        self.key = key
        self.noun = noun
        self.detail = detail
        self.site = site
        self.invocation = invocation
        # Without a site, the noun and detail are all we have to tell sources apart.
        self.group = (kind, noun, site or detail) if group is None else group

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.kind!r}, {self.key!r}, {self.noun!r}, "
            f"{self.detail!r}, {self.site!r}, {self.invocation!r})"
        )


def global_change(
    noun: str, key: tuple[str, str], detail: str, invocation: int, site: Site | None = None
) -> Resource:
    """A change to global state, grouped by what changed (module and attribute); ``site``:
    the line that made it, where one was seen."""
    return Resource("global", key, noun, detail, site, invocation, ("global", noun, key))


class Delta(NamedTuple):
    """What a probe saw: resources that appeared (still there at the end), and went away."""

    added: list[Resource]
    removed: list[Resource]


NO_CHANGE = Delta([], [])


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
            since = f" since invocation {self.first_invocation}"
            if self.count > 1 and not self.detail.endswith(since):  # a soak's total says it
                text += since
            where = f" at {self.site}" if self.site else ""
            return text + f"){where}, reported at invocation {self.invocation}"
        noun = plural(self.noun or self.kind, self.count)
        where = f"created at {self.site}" if self.site else "created at an unknown site"
        text = f"{self.count:,} {noun} {self.detail} {where}".replace("  ", " ")
        since = f"first retained at invocation {self.first_invocation}"
        if self.invocation:
            since += f", reported at invocation {self.invocation}"
        return f"{text}, {since}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (log lines, ``--json``); keys may be added, never renamed."""
        return {
            "kind": self.kind,
            "site": self.site.location if self.site else None,
            "function": self.site.function if self.site else None,
            "via": self.site.via if self.site else None,
            "called_from": self.site.called_from if self.site else None,
            "first_use": self.site.first_used_at if self.site else None,
            "count": self.count,
            "first_invocation": self.first_invocation,
            "invocation": self.invocation,
            "detail": str(self),
            "noun": self.noun,
            "what": self.detail,
            "created_at": self.site.to_dict() if self.site else None,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The finding ``to_dict()`` described (its group as the tracker would build it)."""
        created_at = data.get("created_at")
        site = Site.from_dict(created_at) if created_at else None
        extra = {key: value for key, value in data.items() if key not in _FINDING_KEYS}
        return cls(
            kind=data["kind"],
            count=data["count"],
            site=site,
            first_invocation=data["first_invocation"],
            detail=data.get("what", ""),
            noun=data.get("noun", ""),
            invocation=data.get("invocation", 0),
            extra=extra,
            group=(data["kind"], data.get("noun", ""), site or data.get("what")),
        )


_FINDING_KEYS = frozenset(
    {
        "kind",
        "site",
        "function",
        "via",
        "called_from",
        "first_use",
        "count",
        "first_invocation",
        "invocation",
        "detail",
        "noun",
        "what",
        "created_at",
    }
)


def _finding_from(fields: dict[str, Any]) -> Finding:
    return Finding(**fields)


class InvocationStats(NamedTuple):
    """Counters after one invocation (None: that probe is off)."""

    invocation: int
    fds: int | None  # open file descriptors
    threads: int | None  # live threads
    rss: int | None  # resident memory, bytes
    failed: bool  # the handler raised
    findings: int  # findings reported at this invocation
    db: int | None = None  # DB connections opened by invocations and still open

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InvocationStats:
        return cls(
            int(data["invocation"]),
            data.get("fds"),
            data.get("threads"),
            data.get("rss"),
            bool(data.get("failed")),
            int(data.get("findings", 0)),
            data.get("db"),
        )


class PastRecycle(NamedTuple):
    """What the previous generation used when it was recycled, as the wrapper kept it."""

    invocations: int  # it served
    fds: int | None
    rss: int | None

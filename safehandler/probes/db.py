"""Database connections: what the drivers opened during an invocation and left open.

The integrations (``safehandler.integrations``) report each connection, pool checkout,
Session transaction and engine created while an invocation runs as a ``Handle``: what it is,
where it points (password redacted), where it was created, and how to tell it is still open
and how to clean it up. This probe turns the ones still open at the end into resources, and
carries out the cleanup the policy asks for.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .._constants import LOGGER_NAME
from ..report import Resource, redact
from ..sites import Creation, Site, recorder
from . import NO_CHANGE, Delta

__all__ = ["DbProbe", "Handle", "registry"]

_log = logging.getLogger(LOGGER_NAME)


class Handle:
    """One thing a driver opened: a connection, a checkout, a transaction, an engine."""

    __slots__ = (
        "close",
        "detail",
        "invocation",
        "is_open",
        "noun",
        "ref",
        "rollback",
        "site",
        "superseded",
    )

    def __init__(
        self,
        *,
        noun: str,
        detail: str,
        site: Site | None,
        ref: weakref.ref[Any],
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

    def __repr__(self) -> str:
        return f"Handle({self.noun!r}, {self.detail!r}, invocation={self.invocation})"

    def alive(self) -> Any:
        obj = self.ref()
        try:
            return obj if obj is not None and self.is_open(obj) else None
        except Exception:  # noqa: BLE001 - a half-torn-down driver object is closed enough
            return None


class _Registry:
    """Handles created while an invocation runs; the integrations add, the probe takes."""

    def __init__(self) -> None:
        self.pending: list[Handle] = []
        self.created = 0  # a counter the probe's snapshot reads
        # DBAPI connections made in invocations and the SQLite files of engines made there:
        # their sockets and fds are reported as connections, not a second time as fds.
        self._claimed: weakref.WeakSet[Any] = weakref.WeakSet()
        self._claimed_paths: set[str] = set()

    @property
    def recording(self) -> bool:
        return recorder.depth > 0

    def add(self, handle: Handle) -> None:
        if recorder.depth:
            self.pending.append(handle)
            self.created += 1

    def has_pending(self, obj: Any) -> bool:
        return any(handle.ref() is obj for handle in self.pending)

    def claim(self, dbapi_connection: Any) -> None:
        if recorder.depth:
            # sqlite3.Connection cannot be weakly referenced: its file is claimed by path.
            with contextlib.suppress(TypeError):
                self._claimed.add(dbapi_connection)

    def claim_path(self, path: str) -> None:
        self._claimed_paths.add(path)

    def claimed(self) -> tuple[set[int], set[str]]:
        """fd numbers of claimed DBAPI connections' sockets, and claimed file paths."""
        fds = set()
        for conn in list(self._claimed):
            sock = getattr(conn, "_sock", None)  # PyMySQL
            try:
                fds.add(sock.fileno())  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001, S112 - closed or not a socket
                continue
        return fds, self._claimed_paths

    def supersede(self, obj: Any) -> None:
        """``obj`` is reported through another handle (a Session owns its connection)."""
        for handle in self.pending:
            if handle.ref() is obj:
                handle.superseded = True

    def take(self) -> list[Handle]:
        taken, self.pending = self.pending, []
        return [handle for handle in taken if not handle.superseded]


registry = _Registry()


class DbProbe:
    name = "db"
    counts_before = True

    def __init__(self) -> None:
        from ..integrations import attach_all

        attach_all()
        self.retained: dict[int, tuple[Handle, Resource]] = {}

    @property
    def holding(self) -> bool:
        return bool(self.retained)

    def snapshot(self) -> int:
        return registry.created

    def start(self, count: int) -> list[Resource]:
        return []

    def diff(
        self, before: int, after: int, creations: Sequence[Creation], invocation: int
    ) -> Delta:
        if after == before and not self.retained:
            return NO_CHANGE
        removed = []
        for key, (handle, res) in list(self.retained.items()):
            if handle.alive() is None:  # closed since, by the handler or the garbage collector
                del self.retained[key]
                removed.append(res)
        added = []
        for handle in registry.take() if after != before else ():
            if handle.alive() is None:
                continue
            handle.invocation = invocation
            res = Resource(
                "db_connection", id(handle), handle.noun, handle.detail, handle.site, invocation
            )
            self.retained[id(handle)] = (handle, res)
            added.append(res)
        return Delta(added, removed)

    def cleanup(
        self, mode: str, invocation: int, leaking: Callable[[Resource], bool]
    ) -> list[Resource]:
        """Roll back open transactions; close what the policy says. Returns what is gone."""
        if mode == "off" or not self.retained:
            return []
        closed = []
        for key, (handle, res) in list(self.retained.items()):
            obj = handle.alive()
            if obj is None:
                continue
            try:
                if (mode == "all" and res.invocation == invocation) or leaking(res):
                    handle.close(obj)
                    del self.retained[key]
                    closed.append(res)
                elif handle.rollback is not None and handle.rollback(obj) and not handle.alive():
                    del self.retained[key]  # a Session's transaction was all it held
                    closed.append(res)
            except Exception as exc:  # noqa: BLE001 - cleanup must never fail the invocation
                _log.warning(
                    "safehandler: cleaning up %s %s failed: %s",
                    handle.noun,
                    handle.detail,
                    redact(repr(exc)),
                )
        return closed

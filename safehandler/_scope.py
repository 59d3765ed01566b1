"""The invocation's record of what it creates: files, sockets, threads, processes, DB handles.

An audit hook (``sys.addaudithook``) sees ``open``, ``socket.__new__``, ``sqlite3.connect`` and
process creation; a ``Thread.start`` wrapper sees threads; the driver integrations add the
database handles they see. Everything is recorded only while an invocation runs, so the cost is
paid per creation event (a frame walk of a few microseconds), never per invocation.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
import weakref
from types import FrameType
from typing import Any

from ._records import Creation, Handle
from ._sites import capture_site

__all__ = ["recorder", "registry"]


class _Recorder:
    """Process-wide: an audit hook cannot be removed, so there is exactly one."""

    def __init__(self) -> None:
        self.events: list[Creation] = []
        self.depth = 0  # nested guarded calls share one recording
        self._installed = False
        self._busy = threading.local()

    def install(self) -> None:
        if self._installed:
            return
        self._installed = True
        sys.addaudithook(self._audit)
        _wrap_thread_start(self)

    def begin(self) -> int:
        self.depth += 1
        return len(self.events)

    def end(self, mark: int) -> list[Creation]:
        taken = self.events[mark:]
        self.depth = max(0, self.depth - 1)
        if self.depth == 0:
            self.events = []
        return taken

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        # Called for every audit event in the process: the first test must stay cheap.
        if not self.depth or event not in _WATCHED:
            return
        if getattr(self._busy, "on", False):  # an event raised by our own frame walk
            return
        self._busy.on = True
        try:
            self._record_audit(event, args)
        except Exception:  # noqa: BLE001, S110 - an audit hook must never break the caller's open()
            pass
        finally:
            self._busy.on = False

    def _record_audit(self, event: str, args: tuple[Any, ...]) -> None:
        site = capture_site(sys._getframe(2))
        if event == "socket.__new__":
            self.events.append(Creation("socket", site, weakref.ref(args[0])))
        elif event == "open":
            path = args[0]
            if isinstance(path, (str, bytes, os.PathLike)):
                self.events.append(Creation("file", site, os.fsdecode(path)))
        elif event in _PROCESS_EVENTS:
            self.events.append(Creation("process", site, time.time(), event))
        elif event == "sqlite3.connect":
            database = os.fsdecode(args[0])
            if database != ":memory:" and not database.startswith("file:"):
                self.events.append(Creation("file", site, database, "sqlite3.connect"))

    def record_thread(self, thread: threading.Thread, frame: FrameType | None) -> None:
        if self.depth:
            self.events.append(Creation("thread", capture_site(frame), weakref.ref(thread)))


_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.system", "os.spawn"}
)
_WATCHED = frozenset({"open", "socket.__new__", "sqlite3.connect"}) | _PROCESS_EVENTS


def _wrap_thread_start(rec: _Recorder) -> None:
    original = threading.Thread.start
    if getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def start(self: threading.Thread) -> None:
        if rec.depth:
            rec.record_thread(self, sys._getframe(1))
        original(self)

    start.__safehandler__ = True  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]


recorder = _Recorder()


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

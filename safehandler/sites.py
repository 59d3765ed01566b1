"""Where resources are created: an audit hook for files and sockets, a Thread.start wrapper.

Creation events are recorded only while an invocation runs, so the cost is paid per creation
event (a frame walk of a few microseconds), never per invocation. A site names the first frame
of the user's code (``app.py:12 in handler``); library frames between it and the event are
folded into ``via`` (``pymysql.connections.Connection.__init__``).
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import threading
import time
import weakref
from types import FrameType
from typing import Any, Literal, NamedTuple

__all__ = ["Creation", "Site", "capture_site", "is_user_code", "recorder"]

CreationKind = Literal["file", "socket", "thread", "process"]
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class Site(NamedTuple):
    """A line of user code that created a resource."""

    filename: str
    lineno: int
    function: str
    via: str | None = None
    # the next frame of user code outward, when the site is a helper: (filename, line, function)
    caller: tuple[str, int, str] | None = None

    @property
    def location(self) -> str:
        """``path:line``, the path relative to the working directory when it is below it."""
        return f"{_display_path(self.filename)}:{self.lineno}"

    @property
    def called_from(self) -> str | None:
        if self.caller is None:
            return None
        filename, lineno, function = self.caller
        return f"{_display_path(filename)}:{lineno} in {function}"

    def __str__(self) -> str:
        text = f"{self.location} in {self.function}"
        if self.via:
            text += f" (via {self.via})"
        if self.caller:
            text += f", called from {self.called_from}"
        return text


def _display_path(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive, on Windows
        return filename
    return filename if relative.startswith(os.pardir) else relative


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(_PACKAGE_DIR)
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots) + tuple(
        os.path.join(root, "") for root in roots
    )


_LIBRARY_PREFIXES = _library_prefixes()


@functools.lru_cache(maxsize=4096)
def is_user_code(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    return not filename.startswith(_LIBRARY_PREFIXES)


def _qualname(frame: FrameType) -> str:
    code = frame.f_code
    qualname: str | None = getattr(code, "co_qualname", None)  # Python 3.11+
    return qualname if qualname is not None else _method_qualname(frame) or code.co_name


def _method_qualname(frame: FrameType) -> str | None:
    """Before 3.11 a code object knows its name, not its class: find the class whose method it
    is through the ``self`` or ``cls`` it was called with ("ThreadPoolExecutor.submit")."""
    code = frame.f_code
    if not code.co_argcount or code.co_varnames[0] not in ("self", "cls"):
        return None
    first = frame.f_locals.get(code.co_varnames[0])
    for klass in getattr(first if isinstance(first, type) else type(first), "__mro__", ()):
        member = vars(klass).get(code.co_name)
        if getattr(getattr(member, "__func__", member), "__code__", None) is code:
            return f"{klass.__qualname__}.{code.co_name}"
    return None


def _function_name(frame: FrameType) -> str:
    # "test_x.<locals>.handler" reads worse than "handler"; "Handler.handle" stays.
    return _qualname(frame).rpartition("<locals>.")[2]


def capture_site(frame: FrameType | None) -> Site | None:
    """The first user frame at or above ``frame``, with the library call it made as ``via``."""
    innermost: FrameType | None = None
    callee: FrameType | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if is_user_code(filename):
            via = None
            if callee is not None:
                module = callee.f_globals.get("__name__", "?")
                via = f"{module}.{_qualname(callee)}"
            function = _function_name(frame)
            return Site(filename, frame.f_lineno, function, via, _user_caller(frame.f_back))
        if not filename.startswith(_PACKAGE_DIR):
            innermost = innermost or frame
            callee = frame
        frame = frame.f_back
    if innermost is None:
        return None
    # Only library frames: name the innermost one rather than nothing.
    return Site(innermost.f_code.co_filename, innermost.f_lineno, _function_name(innermost))


def _user_caller(frame: FrameType | None) -> tuple[str, int, str] | None:
    """The outermost user frame below the guard: the handler's own line, when the site is a
    helper it called. None when the site is in the handler itself, or off the guard's stack."""
    outermost = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_PACKAGE_DIR):
            return outermost
        if is_user_code(filename):
            outermost = (filename, frame.f_lineno, _function_name(frame))
        frame = frame.f_back
    return None


class Creation(NamedTuple):
    """One resource created while an invocation ran."""

    kind: CreationKind
    site: Site | None
    ref: Any  # weakref to the socket or thread; the path for files
    detail: str = ""


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

"""The invocation scope: what one invocation creates belongs to it, not to the process.

A ``Scope`` is opened by the guard for one invocation and lives in a ``contextvars`` variable,
so it follows the invocation's thread or async task and nothing else: a thread-per-request
server runs many scopes at once, each judged on its own. A guarded handler called inside
another one joins the enclosing scope (one report, one cleanup, by the outermost). A thread
started inside an invocation records into that invocation's scope while it is open (threads
do not inherit context variables). A forked child starts with no scope.

What is recorded: an audit hook (``sys.addaudithook``) sees ``open``, ``socket.__new__``,
``sqlite3.connect`` and process creation; a ``Thread.start`` wrapper sees threads; an
``atexit.register`` wrapper sees exit callbacks; the driver integrations add the database
handles they see. Nothing is recorded outside an invocation, so the cost is per creation event
(a frame walk of a few microseconds), never per invocation.

Fail open: every hook installed here catches its own faults; the first fault of each hook is
one warning on the ``safehandler`` logger, and the user's ``open()``, ``Thread.start()`` or
``atexit.register()`` goes on as if nothing were installed.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType

from ._records import Creation, Handle, Owner
from ._sites import caller_is_library, capture_site, is_user_code, library_prefixes
from ._suppress import suppress
from ._warn import warn

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "IDLE",
    "Scope",
    "abandon",
    "begin",
    "current",
    "end",
    "handles_added",
    "install",
    "live_serials",
    "others_live",
    "owner_in",
    "owner_of",
    "record_fds",
    "recording",
    "register_owner",
    "reporting_fault",
    "watch_owner_class",
]

_serials = itertools.count(1)


class Scope:
    """What one invocation created while it ran, and what the drivers opened."""

    __slots__ = (
        "__weakref__",
        "_claimed",
        "_claimed_paths",
        "_remaining_ms",
        "creations",
        "handles",
        "live",
        "overlapped",
        "serial",
    )

    def __init__(self, remaining_ms: Callable[[], Any] | None = None) -> None:
        self.serial = next(_serials)  # tells scopes apart: which invocation last used a handle
        self.creations: list[Creation] = []
        self.handles: list[Handle] = []
        self.live = True
        # another invocation ran at some moment of this one: process-wide counters are shared
        self.overlapped = False
        # the Lambda context's clock, asked only when someone must not wait past the deadline
        # (asking on every invocation would cost more than the rest of the bookkeeping)
        self._remaining_ms = remaining_ms
        # DBAPI connections and SQLite files opened in this scope: their sockets and fds are
        # reported as connections, not a second time as fds. (Made on the first claim: most
        # invocations claim nothing.)
        self._claimed: list[weakref.ref[Any]] | None = None
        self._claimed_paths: set[str] | None = None

    def __repr__(self) -> str:
        state = "live" if self.live else "ended"
        return f"<Scope #{self.serial} {state}, {len(self.creations)} creations>"

    @property
    def busy(self) -> bool:
        """Something was created or opened: the probes look closer."""
        return bool(self.creations or self.handles)

    def remaining(self) -> float | None:
        """Seconds left before the invocation's deadline, if it has one."""
        clock = self._remaining_ms
        if clock is None:
            return None
        try:
            return float(clock()) / 1000
        except Exception:  # noqa: BLE001 - a context of another shape: no deadline known
            return None

    # -- database handles (the integrations add them) ---------------------------------

    def add_handle(self, handle: Handle) -> None:
        handle.scope = self.serial
        handle.last_used = self.serial
        self.handles.append(handle)
        global _handles_added  # noqa: PLW0603 - a counter the DB probe's snapshot reads
        _handles_added += 1

    def has_handle(self, obj: Any) -> bool:
        return any(handle.ref() is obj for handle in self.handles)

    def supersede(self, obj: Any) -> None:
        """``obj`` is reported through another handle (a Session owns its connection)."""
        for handle in self.handles:
            if handle.ref() is obj:
                handle.superseded = True

    def take_handles(self) -> list[Handle]:
        taken, self.handles = self.handles, []
        return [handle for handle in taken if not handle.superseded]

    def claim(self, dbapi_connection: Any) -> None:
        # sqlite3.Connection cannot be weakly referenced: its file is claimed by path.
        with suppress(TypeError):
            ref = weakref.ref(dbapi_connection)
            if self._claimed is None:
                self._claimed = []
            self._claimed.append(ref)

    def claim_path(self, path: str) -> None:
        if self._claimed_paths is None:
            self._claimed_paths = set()
        self._claimed_paths.add(path)

    def claimed(self) -> tuple[set[int], set[str]]:
        """fd numbers of claimed DBAPI connections' sockets, and claimed file paths."""
        fds = set()
        for ref in self._claimed or ():
            conn = ref()
            # PyMySQL's socket object; psycopg's connection tells libpq's socket itself
            sock = getattr(conn, "_sock", conn) if conn is not None else None
            try:
                fds.add(sock.fileno())  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001, S112 - closed or not a socket
                continue
        return fds, self._claimed_paths if self._claimed_paths is not None else set()


IDLE = Scope()  # between invocations: nothing recorded, nobody's doing
IDLE.live = False

_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "safehandler_scope", default=None
)
_lock = threading.Lock()
_live: set[Scope] = set()
# the running threads by ident, read without threading.current_thread(), which would create a
# dummy Thread object for a thread started outside the threading module
_threads: dict[int, threading.Thread] = getattr(threading, "_active", {})
_handles_added = 0


def handles_added() -> int:
    """How many database handles scopes have registered: moves when a driver opened one."""
    return _handles_added


def current() -> Scope | None:
    """The open scope of the running invocation: this context's, or the thread's creator's."""
    scope = _current.get()
    if scope is None:
        thread = _threads.get(threading.get_ident())
        ref = getattr(thread, "_safehandler_scope", None)
        scope = ref() if ref is not None else None
    return scope if scope is not None and scope.live else None


def begin(
    remaining_ms: Callable[[], Any] | None = None,
) -> tuple[Scope, contextvars.Token[Scope | None]] | None:
    """Open a scope for an invocation in this context; None when one is open already (a nested
    guarded call joins the enclosing invocation). ``remaining_ms``: the invocation's clock, a
    Lambda context's ``get_remaining_time_in_millis``."""
    enclosing = _current.get()
    if enclosing is not None and enclosing.live:
        return None
    scope = Scope(remaining_ms)
    with _lock:
        if _live:
            scope.overlapped = True
            for other in _live:
                other.overlapped = True
        _live.add(scope)
    return scope, _current.set(scope)


def end(opened: tuple[Scope, contextvars.Token[Scope | None]]) -> Scope:
    """Close the scope ``begin`` opened: nothing more is recorded into it."""
    scope, token = opened
    scope.live = False
    with _lock:
        _live.discard(scope)
    try:  # noqa: SIM105 - suppress() would be one more object per invocation
        _current.reset(token)
    except ValueError:  # a token of another context (a forked child's)
        pass
    return scope


def abandon(opened: tuple[Scope, contextvars.Token[Scope | None]]) -> None:
    """``end`` at its simplest, for when ``end`` itself failed: never raises."""
    scope, token = opened
    scope.live = False
    with suppress(Exception):
        _live.discard(scope)
    with suppress(Exception):
        _current.reset(token)


def others_live(scope: Scope) -> list[Scope]:
    """The other invocations running now."""
    with _lock:
        return [other for other in _live if other is not scope]


def live_serials() -> set[int]:
    """The serials of the invocations running now."""
    with _lock:
        return {scope.serial for scope in _live}


def _forget_in_child() -> None:
    # A forked child is a new process: no invocation of the parent runs in it.
    global _lock  # noqa: PLW0603 - the parent's lock may have been held by another thread
    _lock = threading.Lock()
    _live.clear()
    _current.set(None)


os.register_at_fork(after_in_child=_forget_in_child)


# -- owners: objects that open resources lazily ---------------------------------------

_owners: weakref.WeakKeyDictionary[Any, Owner] = weakref.WeakKeyDictionary()
_owner_classes: dict[type, str] = {}  # the classes watched, and how a report names them


def watch_owner_class(cls: type, kind: str) -> None:
    """Instances of ``cls`` are owners. One made before the class was watched (at import,
    before the first guard) was made outside any invocation."""
    _owner_classes[cls] = kind


def register_owner(obj: Any, kind: str, frame: FrameType | None, *, bundles: bool = False) -> None:
    """``obj`` (a client, a session, an executor) is being made at ``frame``: a resource it
    opens, in its ``__init__`` or later, is told as made there, and by which invocation (none:
    at import, at init). ``bundles``: the fds it opens are one resource of it."""
    scope = current()
    with suppress(TypeError):  # not weakly referenceable: never an owner
        _owners[obj] = Owner(kind, capture_site(frame), scope.serial if scope else 0, bundles)


def owner_in(frame: FrameType | None) -> Owner | None:
    """The outermost known owner among the library frames at and above ``frame``: the
    ``self`` of a method of a client, session or executor on the way to the event. (The
    outermost is what the user made: a ``requests.Session``, not the pool manager inside.)"""
    if not _owner_classes:
        return None
    found = None
    while frame is not None:
        code = frame.f_code
        if is_user_code(code.co_filename):
            break  # the owners are libraries' objects, used by the user's code
        if code.co_argcount and code.co_varnames[0] == "self":
            with suppress(Exception):  # an unhashable self is no owner
                found = owner_of(frame.f_locals.get("self")) or found
        frame = frame.f_back
    return found


def owner_of(obj: Any) -> Owner | None:
    """The owner record of ``obj``, if it is an instance of a watched class."""
    try:
        owner = _owners.get(obj)
    except TypeError:  # not weakly referenceable: never registered
        owner = None
    if owner is not None:
        return owner
    for klass in type(obj).__mro__:
        kind = _owner_classes.get(klass)
        if kind is not None:  # made before it was watched: at import, outside invocations
            return Owner(kind, None, 0)
    return None


# -- faults of our own hooks ----------------------------------------------------------

_faulted: set[str] = set()


def reporting_fault(hook: str, exc: BaseException) -> None:
    """One warning per hook for its first fault; the hook then goes on doing what it can."""
    if hook in _faulted:
        return
    _faulted.add(hook)
    warn("safehandler: its %s hook failed and skips what it cannot record: %r", hook, exc, exc=exc)


# -- the hooks ------------------------------------------------------------------------

_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.system", "os.spawn"}
)
_WATCHED = frozenset({"open", "socket.__new__", "sqlite3.connect"}) | _PROCESS_EVENTS
_busy = threading.local()
_installed = False


def install() -> None:
    """The audit hook and the wrappers, once per process (an audit hook cannot be removed)."""
    global _installed  # noqa: PLW0603 - once per process
    if _installed:
        return
    _installed = True
    library_prefixes()  # before the hook: an audit event must not import sysconfig
    sys.addaudithook(_audit)
    _wrap_thread_start()
    _wrap_atexit_register()
    _wrap_fd_makers()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # A plain function, called for every audit event in the process: the first test is one
    # set lookup. (A bound method would cost an attribute lookup on every event.)
    if event not in _WATCHED:
        return
    try:
        scope = current()
        if scope is None or getattr(_busy, "on", False):  # our own frame walk's events
            return
        _busy.on = True
        try:
            creation = _creation(event, args, sys._getframe(1))
            if creation is not None:
                scope.creations.append(creation)
        finally:
            _busy.on = False
    except Exception as exc:  # noqa: BLE001 - an audit hook must never break the caller's open()
        reporting_fault("audit", exc)


def _creation(event: str, args: tuple[Any, ...], frame: FrameType) -> Creation | None:
    site = capture_site(frame)
    if event == "socket.__new__":
        return Creation("socket", site, weakref.ref(args[0]), owner=owner_in(frame))
    if event == "open":
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            return Creation("file", site, os.fsdecode(path))
        return None
    if event in _PROCESS_EVENTS:
        return Creation("process", site, time.time(), event)
    database = os.fsdecode(args[0])  # sqlite3.connect
    if database != ":memory:" and not database.startswith("file:"):
        return Creation("file", site, database, "sqlite3.connect")
    return None


def _wrap_thread_start() -> None:
    original = threading.Thread.start
    if getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def start(self: threading.Thread) -> None:
        scope = current()
        if scope is not None:
            try:
                # the thread records into this invocation's scope while it is open
                self._safehandler_scope = weakref.ref(scope)  # type: ignore[attr-defined]
                frame = sys._getframe(1)
                owner = owner_in(frame)
                creation = Creation("thread", capture_site(frame), weakref.ref(self), owner=owner)
                scope.creations.append(creation)
            except Exception as exc:  # noqa: BLE001 - the thread must start whatever happens
                reporting_fault("Thread.start", exc)
        original(self)

    start.__safehandler__ = True  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]


def _wrap_atexit_register() -> None:
    """Exit callbacks, with the callback and the line that registered it. A library's own
    registration (the first ``weakref.finalize`` of a process registers one) is marked as
    such: its caller is library code."""
    original: Any = atexit.register
    if getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def register(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
        scope = current()
        if scope is not None:
            try:
                caller = sys._getframe(1)
                detail = "library" if caller_is_library(caller) else "handler"
                scope.creations.append(Creation("atexit", capture_site(caller), func, detail))
            except Exception as exc:  # noqa: BLE001 - the registration must happen anyway
                reporting_fault("atexit.register", exc)
        return original(func, *args, **kwargs)  # type: ignore[no-any-return]

    register.__safehandler__ = True  # type: ignore[attr-defined]
    atexit.register = register  # type: ignore[assignment]


def record_fds(fds: tuple[int, ...], what: str, frame: FrameType) -> None:
    """fds made at ``frame`` by a call the audit hook does not see: their creation site."""
    scope = current()
    if scope is None:
        return
    try:
        site = capture_site(frame)
        scope.creations.append(Creation("fd", site, fds, what, owner=owner_in(frame)))
    except Exception as exc:  # noqa: BLE001 - the fds are made: only their site is lost
        reporting_fault("fd", exc)


# The calls that make an fd without an audit event, and what their fds are (a /proc target
# prefix: a recorded fd number is matched only to an fd of that kind, never a reused one).
_FD_MAKERS = (("pipe", "pipe:"), ("pipe2", "pipe:"), ("memfd_create", "/memfd:"))


def _wrap_fd_makers() -> None:
    """``os.pipe`` (``subprocess`` makes its pipes with it), ``os.pipe2`` and
    ``os.memfd_create``, called through ``os``: their fds get the line that made them. (Code
    that bound the name before the first guard, ``from os import pipe``, goes unseen.)"""
    for name, what in _FD_MAKERS:
        original = getattr(os, name, None)
        if original is None or getattr(original, "__safehandler__", False):
            continue
        setattr(os, name, _fd_maker(original, what))


def _fd_maker(original: Callable[..., Any], what: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def make(*args: Any, **kwargs: Any) -> Any:
        made = original(*args, **kwargs)
        if _live:  # outside every invocation: one set's truth test, nothing recorded
            record_fds(made if isinstance(made, tuple) else (made,), what, sys._getframe(1))
        return made

    make.__safehandler__ = True  # type: ignore[attr-defined]
    return make


class _Recording:
    """``recording()``'s block (a class: ``contextlib`` costs 1.4 ms of cold start)."""

    def __init__(self, remaining_ms: Callable[[], Any] | None) -> None:
        self._remaining_ms = remaining_ms
        self._opened: tuple[Scope, Any] | None = None

    def __enter__(self) -> Scope | None:
        self._opened = opened = begin(self._remaining_ms)
        return opened[0] if opened else current()

    def __exit__(self, *exc_info: object) -> None:
        if self._opened:
            end(self._opened)


def recording(remaining_ms: Callable[[], Any] | None = None) -> _Recording:
    """A scope around a block (tests and tools): the block's creations, then ended."""
    return _Recording(remaining_ms)

"""After an in-process soak: give the caller back the process as the soak found it.

A soaked handler that leaks keeps its leaks in the caller's process: 1,500 open connections
in a pytest session under ``ulimit -n 1024`` make the next test fail and pytest itself die
with EMFILE. So a ``Baseline`` is taken before the soak, and ``release`` after it:

- **Process-wide state** is put back whatever the verdict: ``os.environ``, ``sys.path``, the
  working directory, ``builtins``, and logging handlers added meanwhile (removed and closed).
- **What leaked** is released only when the soak found leaks, and only what the soak created
  (nothing that existed before it): DB connections (SQLite, PyMySQL, psycopg) are closed, but
  not those idle in a pool for reuse, and SQLAlchemy engines it created are disposed; files and
  sockets holding a descriptor opened during the soak are closed through the Python object
  that owns them (never by number: a number closed under its owner would later close whatever
  reused it); executors are shut down, timers cancelled, threads joined briefly; child
  processes are terminated. A resource reused across invocations (one module-level
  connection) is no finding, so a clean soak keeps it.
- **What cannot be released** is said: threads that do not stop, descriptors no Python object
  owns, the handler's module globals (left as they are: they are the handler's own state).
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import io
import logging
import os
import socket
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Baseline", "release"]

# (module, class) of DB connections and the method that closes one, when the driver is loaded
_CONNECTIONS = (
    ("sqlite3", "Connection", "close", "sqlite3 connection"),
    ("pymysql.connections", "Connection", "close", "PyMySQL connection"),
    ("psycopg", "Connection", "close", "psycopg connection"),
    ("psycopg2.extensions", "connection", "close", "psycopg2 connection"),
    ("redis.client", "Redis", "close", "Redis client"),
)
_JOIN_BUDGET = 1.0  # seconds for all the threads together
_TERMINATE_WAIT = 2.0


def _fds() -> set[int] | None:
    """The open descriptors, less the listing's own and the process's /proc files (the
    probes' counters read them: safehandler's, not the handler's). None when they cannot be
    listed (no descriptor left to list them with)."""
    try:
        listed = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return None
    own = (f"/proc/{os.getpid()}/", "/proc/self/")
    open_now = set()
    for fd in listed:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's descriptor, closed by now
        if not target.startswith(own):
            open_now.add(fd)
    return open_now


def _children() -> set[int]:
    try:
        import psutil

        return {child.pid for child in psutil.Process().children(recursive=True)}
    except Exception:  # noqa: BLE001 - no children known: none terminated
        return set()


def _handlers() -> dict[str, list[logging.Handler]]:
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return {
        logger.name: list(logger.handlers)
        for logger in loggers
        if isinstance(logger, logging.Logger)
    }


def _stdlib_callables() -> dict[tuple[str, str], Any]:
    """The functions and classes the loaded standard library modules bind by name: what a
    monkeypatch (``json.dumps = ...``) rebinds."""
    names = getattr(sys, "stdlib_module_names", ())
    bound = {}
    for module_name, module in list(sys.modules.items()):
        if module_name.partition(".")[0] not in names or module_name == "builtins":
            continue
        for name, value in list(getattr(module, "__dict__", {}).items()):
            if callable(value) and not name.startswith("__"):
                bound[module_name, name] = value
    return bound


def _candidate_classes() -> tuple[type, ...]:
    """Classes whose instances hold what a release may close, of the modules loaded now."""
    classes: list[type] = [io.IOBase, socket.socket, threading.Thread]
    named = [(module, name) for module, name, _, _ in _CONNECTIONS]
    named += [
        ("sqlalchemy.engine.base", "Engine"),
        ("concurrent.futures.thread", "ThreadPoolExecutor"),
    ]
    for module, name in named:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            classes.append(cls)
    return tuple(classes)


class _Known:
    """The objects of the candidate classes that existed before the soak. Weakly held where
    the type allows (an id alone would match a new object at a freed one's address); a
    ``sqlite3.Connection`` allows none, so those are held, which keeps their ids theirs."""

    def __init__(self) -> None:
        classes = _candidate_classes()
        self.weak: weakref.WeakSet[Any] = weakref.WeakSet()
        self.held: list[Any] = []
        for obj in gc.get_objects():
            if issubclass(type(obj), classes):  # (isinstance may ask obj's own __class__)
                try:
                    self.weak.add(obj)
                except TypeError:
                    self.held.append(obj)
        self.held_ids = {id(obj) for obj in self.held}

    def __contains__(self, obj: Any) -> bool:
        try:
            weakref.ref(obj)
        except TypeError:
            return id(obj) in self.held_ids
        return obj in self.weak


@dataclass
class Baseline:
    """What the process held before the soak."""

    fds: set[int] | None = field(default_factory=_fds)
    known: _Known = field(default_factory=_Known)
    children: set[int] = field(default_factory=_children)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    sys_path: list[str] = field(default_factory=lambda: list(sys.path))
    cwd: str = field(default_factory=os.getcwd)
    builtins: dict[str, Any] = field(default_factory=lambda: dict(vars(builtins)))
    stdlib: dict[tuple[str, str], Any] = field(default_factory=_stdlib_callables)
    handlers: dict[str, list[logging.Handler]] = field(default_factory=_handlers)

    @classmethod
    def take(cls) -> Baseline:
        return cls()


def release(baseline: Baseline, leaked_kinds: Iterable[str]) -> list[str]:
    """Put back the process-wide state and release what leaked; one line per kind of action."""
    kinds = set(leaked_kinds)
    done: list[str] = []
    done += _restore_state(baseline)
    if not kinds - {"memory"}:
        return done
    classes = _candidate_classes()
    new = [
        obj
        for obj in gc.get_objects()
        if issubclass(type(obj), classes) and obj not in baseline.known
    ]
    if kinds & {"fd", "socket", "db_connection", "global"}:
        done += _close_connections(new)
        done += _close_descriptors(new, baseline)
    if kinds & {"thread", "global"}:
        done += _stop_threads(new, baseline)
    if "process" in kinds:
        done += _terminate_children(baseline)
    return done


# -- process-wide state ---------------------------------------------------------------


def _restore_state(baseline: Baseline) -> list[str]:
    return [*_restore_process(baseline), *_restore_bindings(baseline), *_restore_logging(baseline)]


def _restore_process(baseline: Baseline) -> list[str]:
    done = []
    if dict(os.environ) != baseline.environ:
        changed = {
            k
            for k in {*os.environ, *baseline.environ}
            if os.environ.get(k) != baseline.environ.get(k)
        }
        os.environ.clear()
        os.environ.update(baseline.environ)
        done.append(f"restored os.environ ({_count(len(changed), 'variable')})")
    if sys.path != baseline.sys_path:
        sys.path[:] = baseline.sys_path
        done.append("restored sys.path")
    if os.getcwd() != baseline.cwd:
        with contextlib.suppress(OSError):
            os.chdir(baseline.cwd)
            done.append(f"restored the working directory ({baseline.cwd})")
    return done


def _restore_bindings(baseline: Baseline) -> list[str]:
    done = []
    current = vars(builtins)
    changed_builtins = sorted(
        name
        for name in {*current, *baseline.builtins}
        if current.get(name, _MISSING) is not baseline.builtins.get(name, _MISSING)
    )
    if changed_builtins:
        for name in changed_builtins:
            if name in baseline.builtins:
                current[name] = baseline.builtins[name]
            else:
                del current[name]
        done.append("restored builtins (" + ", ".join(changed_builtins[:5]) + ")")
    rebound = []
    for (module_name, name), value in baseline.stdlib.items():
        namespace = getattr(sys.modules.get(module_name), "__dict__", None)
        if namespace is not None and namespace.get(name, value) is not value:
            namespace[name] = value
            rebound.append(f"{module_name}.{name}")
    if rebound:
        done.append("restored " + ", ".join(sorted(rebound)[:5]))
    return done


def _restore_logging(baseline: Baseline) -> list[str]:
    removed = 0
    for name, handlers in _handlers().items():
        before = baseline.handlers.get(name, [])
        logger = logging.getLogger(name or None)
        for handler in handlers:
            if handler not in before:
                logger.removeHandler(handler)
                with contextlib.suppress(Exception):
                    handler.close()
                removed += 1
    return [f"removed and closed {_count(removed, 'logging handler')}"] if removed else []


_MISSING = object()


# -- what leaked ----------------------------------------------------------------------


def _close_connections(new: list[Any]) -> list[str]:
    done = []
    # engines the soak made are disposed (their pooled connections closed); an engine that
    # was there before keeps its pool, and what sits in it is not touched: it is reuse
    engines = _of_class(new, "sqlalchemy.engine.base", "Engine")
    disposed = sum(_tried(engine.dispose) for engine in engines)
    if disposed:
        done.append(f"disposed {_count(disposed, 'SQLAlchemy engine')}")
    pooled = _pooled()
    for module, name, method, noun in _CONNECTIONS:
        leaked = [conn for conn in _of_class(new, module, name) if id(conn) not in pooled]
        closed = sum(_tried(getattr(conn, method)) for conn in leaked)
        if closed:
            done.append(f"closed {_count(closed, noun)}")
    return done


def _pooled() -> set[int]:
    """ids of the DBAPI connections checked in to a live SQLAlchemy pool (idle, for reuse)."""
    ids: set[int] = set()
    for engine in _of_class(gc.get_objects(), "sqlalchemy.engine.base", "Engine"):
        queue = getattr(getattr(engine.pool, "_pool", None), "queue", ())
        for record in list(queue):
            ids.add(id(getattr(record, "dbapi_connection", None)))
    return ids


def _opened(baseline: Baseline) -> set[int] | None:
    """The descriptors opened since the baseline; None: any, as far as can be told."""
    now = _fds()
    if now is None or baseline.fds is None:
        return None
    return now - baseline.fds


def _close_descriptors(new: list[Any], baseline: Baseline) -> list[str]:
    opened = _opened(baseline)
    if opened is not None and not opened:
        return []
    closed: Counter[str] = Counter()
    # outermost first: a text file closes its buffer and raw file; closed from the inside,
    # the wrapper would fail to flush when it is collected
    layers = (
        (io.TextIOWrapper, "file"),
        (io.BufferedRandom, "file"),
        (io.BufferedWriter, "file"),
        (io.BufferedReader, "file"),
        (io.FileIO, "file"),
        (socket.socket, "socket"),
    )
    for cls, noun in layers:
        for obj in new:
            if not isinstance(obj, cls) or _closed(obj):
                continue
            try:
                number = obj.fileno()
            except (OSError, ValueError):
                continue
            if (opened is None or number in opened) and _tried(obj.close):
                closed[noun] += 1
    done = [f"closed {_count(n, noun)}" for noun, n in closed.items()]
    unowned = len(_opened(baseline) or ())
    if unowned:
        done.append(
            f"left open: {_count(unowned, 'descriptor')} opened during the soak that no file "
            "or socket object owns (a connection kept for reuse, os.pipe, a C library)"
        )
    return done


def _stop_threads(new: list[Any], baseline: Baseline) -> list[str]:
    done = []
    executors = _of_class(new, "concurrent.futures.thread", "ThreadPoolExecutor")
    shut = sum(_tried(lambda e=e: e.shutdown(wait=False, cancel_futures=True)) for e in executors)
    if shut:
        done.append(f"shut down {_count(shut, 'thread pool')}")
    timers = [obj for obj in new if isinstance(obj, threading.Timer) and obj.is_alive()]
    for timer in timers:
        timer.cancel()
    if timers:
        done.append(f"cancelled {_count(len(timers), 'timer')}")
    started = [t for t in threading.enumerate() if t not in baseline.known]
    deadline = time.monotonic() + _JOIN_BUDGET
    for thread in started:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    running = Counter(t.name for t in started if t.is_alive())
    stopped = len(started) - sum(running.values())
    if stopped:
        done.append(f"{_count(stopped, 'thread')} ended")
    if running:
        names = ", ".join(f"{n} x {name!r}" for name, n in running.most_common(3))
        done.append(
            f"still running: {_count(sum(running.values()), 'thread')} ({names}) that cannot be "
            "stopped from outside: isolate the soak (--isolate)"
        )
    return done


def _terminate_children(baseline: Baseline) -> list[str]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - a dependency
        return []
    children = [
        child
        for child in psutil.Process().children(recursive=True)
        if child.pid not in baseline.children
    ]
    if not children:
        return []
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=_TERMINATE_WAIT)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=_TERMINATE_WAIT)
    return [f"terminated {_count(len(children), 'child process')}"]


# -- helpers ----------------------------------------------------------------------------


def _of_class(objects: Iterable[Any], module: str, name: str) -> list[Any]:
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    if not isinstance(cls, type):
        return []
    return [obj for obj in objects if isinstance(obj, cls) and not _closed(obj)]


def _closed(obj: Any) -> bool:
    try:
        closed = getattr(obj, "closed", False)
        return bool(closed) if not callable(closed) else False
    except Exception:  # noqa: BLE001 - sqlite3 raises on a closed connection's attributes
        return True


def _tried(call: Any) -> bool:
    try:
        call()
    except Exception:  # noqa: BLE001 - what cannot be released is left as it is
        return False
    return True


def _count(n: int, noun: str) -> str:
    plural = {"child process": "child processes"}.get(noun, noun + "s")
    return f"{n:,} {noun if n == 1 else plural}"

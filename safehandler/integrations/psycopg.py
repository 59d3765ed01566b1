"""psycopg 3 and psycopg2: every PostgreSQL connection opened during an invocation.

libpq opens its socket in C, past the audit hook: without this integration a connection per
call reads as "sockets to 127.0.0.1:5432 created at an unknown site". Here the Python call that
made the connection is its site (``psycopg.Connection.__init__`` wrapped at class level, or the
``psycopg2.connect`` function), the connection is a ``db_connection`` handle of the invocation,
and its libpq socket is claimed, so the fd probe does not report it a second time.

psycopg 3 tells each use (every operation goes through ``Connection.wait``), so the leak cleanup
can tell a kept, reused connection from a leaked one. psycopg2's cursors are C: its uses are not
told, and its connections are reported, rolled back and closed only under ``db_cleanup=all``.
"""

from __future__ import annotations

import functools
import sys
import weakref
from collections.abc import Callable
from types import FrameType, ModuleType

from .._records import Handle
from .._scope import current, reporting_fault
from .._sites import capture_site
from ._use import track, used

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_psycopg", "attach_psycopg2", "describe"]

# libpq's PQtransactionStatus: 0 idle, 1 active, 2 in a transaction, 3 in a failed one
_IN_TRANSACTION = (1, 2, 3)


def describe(conn: Any) -> str:
    """``user@host:port/db`` from libpq's own record; never the password."""
    info = conn.info
    return f"to {info.user}@{info.host}:{info.port}/{info.dbname}"


# -- psycopg 3 -----------------------------------------------------------------------


def _rollback3(conn: Any) -> bool:
    if not conn.closed and int(conn.info.transaction_status) in _IN_TRANSACTION:
        conn.rollback()
        return True
    return False


def _close3(conn: Any) -> None:
    _rollback3(conn)
    conn.close()


def attach_psycopg(module: ModuleType) -> None:
    """Attached once ``psycopg`` is loaded: its ``Connection`` (the sync one)."""
    cls = module.Connection
    original = cls.__init__
    if getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, *args, **kwargs)
        scope = current()
        if scope is None:
            return
        try:
            _register(
                self,
                scope,
                sys._getframe(1),
                noun="psycopg connection",
                via="psycopg.connect",
                rollback=_rollback3,
                close=_close3,
            )
        except Exception as exc:  # noqa: BLE001 - the user's connection is made: keep it
            reporting_fault("psycopg", exc)

    __init__.__safehandler__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__
    _watch_wait(cls)


def _watch_wait(cls: Any) -> None:
    """Every query, commit and rollback of a psycopg 3 connection waits through ``wait``."""
    original = getattr(cls, "wait", None)
    if original is None or getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        used(self)
        return original(self, *args, **kwargs)

    wait.__safehandler__ = True  # type: ignore[attr-defined]
    cls.wait = wait


# -- psycopg2 ------------------------------------------------------------------------


def _rollback2(conn: Any) -> bool:
    if not conn.closed and conn.get_transaction_status() in _IN_TRANSACTION:
        conn.rollback()
        return True
    return False


def _close2(conn: Any) -> None:
    _rollback2(conn)
    conn.close()


def attach_psycopg2(module: ModuleType) -> None:
    """Attached once ``psycopg2`` is loaded. Its connection class is C: the module's
    ``connect`` function, which every caller (SQLAlchemy too) looks up at call time, is
    wrapped instead. (The hook runs before the importer's ``from psycopg2 import connect``
    reads the name, so that import gets the wrapper too.)"""
    original: Callable[..., Any] = module.connect
    if getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        conn = original(*args, **kwargs)
        scope = current()
        if scope is None:
            return conn
        try:
            _register(
                conn,
                scope,
                sys._getframe(1),
                noun="psycopg2 connection",
                via="psycopg2.connect",
                rollback=_rollback2,
                close=_close2,
                tracks=False,
            )
        except Exception as exc:  # noqa: BLE001 - the user's connection is made: keep it
            reporting_fault("psycopg2", exc)
        return conn

    connect.__safehandler__ = True  # type: ignore[attr-defined]
    module.connect = connect  # type: ignore[attr-defined]


# -- both ----------------------------------------------------------------------------


def _register(  # noqa: PLR0917 - the facts of one driver
    conn: Any,
    scope: Any,
    frame: FrameType,
    noun: str,
    via: str,
    rollback: Callable[[Any], bool],
    close: Callable[[Any], None],
    tracks: bool = True,
) -> None:
    site = capture_site(frame)
    if site is not None and site.via is None:
        site = site._replace(via=via)
    scope.claim(conn)  # its libpq socket is this connection's, not an fd of its own
    handle = Handle(
        noun=noun,
        detail=describe(conn),
        site=site,
        ref=weakref.ref(conn),
        is_open=lambda c: not c.closed,
        close=close,
        rollback=rollback,
    )
    scope.add_handle(handle)
    if tracks:
        track(conn, handle)

"""PyMySQL: every ``Connection`` opened during an invocation, and whether it is still open."""

from __future__ import annotations

import functools
import sys
import weakref
from types import ModuleType

from .._records import Handle
from .._scope import current, reporting_fault
from .._sites import capture_site
from ._use import track, used

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach", "describe"]

_IN_TRANSACTION = 1  # pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS


def _text(value: Any, encoding: str) -> str:
    # PyMySQL keeps user and database as bytes in the connection's charset (latin1, ...)
    if isinstance(value, bytes):
        return value.decode(encoding or "utf-8", errors="replace")
    return "" if value is None else str(value)


def describe(conn: Any) -> str:
    """``user@host:port/db``; never the password."""
    encoding = getattr(conn, "encoding", None) or "utf-8"
    try:
        "".encode(encoding)
    except LookupError:  # a charset Python does not know by that name
        encoding = "utf-8"
    user = _text(getattr(conn, "user", None), encoding)
    db = _text(getattr(conn, "db", None), encoding)
    unix_socket = getattr(conn, "unix_socket", None)
    where = unix_socket or f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"
    return f"to {user}@{where}/{db}"


def _in_transaction(conn: Any) -> bool:
    return bool(conn.open and conn.server_status & _IN_TRANSACTION)


def _rollback(conn: Any) -> bool:
    if _in_transaction(conn):
        conn.rollback()
        return True
    return False


def _close(conn: Any) -> None:
    _rollback(conn)
    conn.close()
    # if the handler comes back to it after all, it is reopened (see _execute_command)
    conn._safehandler_closed = True


def attach(connections: ModuleType) -> None:
    cls = connections.Connection
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
            _register(self, scope, sys._getframe(1))
        except Exception as exc:  # noqa: BLE001 - the user's connection is made: keep it
            reporting_fault("PyMySQL", exc)

    __init__.__safehandler__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__
    _watch_commands(cls)


def _register(conn: Any, scope: Any, frame: Any) -> None:
    site = capture_site(frame)
    if site is not None and site.via is None:
        site = site._replace(via="pymysql.connect")
    scope.claim(conn)
    handle = Handle(
        noun="PyMySQL connection",
        detail=describe(conn),
        site=site,
        ref=weakref.ref(conn),
        is_open=lambda c: bool(c.open),
        close=_close,
        rollback=_rollback,
    )
    scope.add_handle(handle)
    if getattr(type(conn)._execute_command, "__safehandler__", False):
        track(conn, handle)


def _watch_commands(cls: Any) -> None:
    """Every command goes through ``_execute_command``: a use of the connection. Without it
    (another PyMySQL), uses are not told and the leak cleanup leaves these connections be.
    A connection the cleanup closed is reopened if it is used again: closing it frees the
    server's slot, and the handler never sees the difference but for session state."""
    original = getattr(cls, "_execute_command", None)
    if original is None or getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def _execute_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        used(self)
        if getattr(self, "_safehandler_closed", False):
            # The leak cleanup closed this idle connection, and the handler uses it again:
            # open it anew with its own settings rather than fail the handler's query.
            self._safehandler_closed = False
            if not self.open:
                self.connect()
        return original(self, *args, **kwargs)

    _execute_command.__safehandler__ = True  # type: ignore[attr-defined]
    cls._execute_command = _execute_command

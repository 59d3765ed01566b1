"""PyMySQL: every ``Connection`` opened during an invocation, and whether it is still open."""

from __future__ import annotations

import functools
import sys
import weakref
from types import ModuleType
from typing import Any

from .._records import Handle
from .._scope import registry
from .._sites import capture_site

__all__ = ["attach", "describe"]

_IN_TRANSACTION = 1  # pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS


def describe(conn: Any) -> str:
    """``user@host:port/db``; never the password."""
    user = conn.user.decode() if isinstance(conn.user, bytes) else conn.user
    db = conn.db.decode() if isinstance(conn.db, bytes) else conn.db
    where = f"{conn.host}:{conn.port}" if not conn.unix_socket else conn.unix_socket
    return f"to {user}@{where}/{db or ''}"


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


def attach(connections: ModuleType) -> None:
    cls = connections.Connection
    original = cls.__init__
    if getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, *args, **kwargs)
        if not registry.recording:
            return
        site = capture_site(sys._getframe(1))
        if site is not None and site.via is None:
            site = site._replace(via="pymysql.connect")
        registry.claim(self)
        registry.add(
            Handle(
                noun="PyMySQL connection",
                detail=describe(self),
                site=site,
                ref=weakref.ref(self),
                is_open=lambda conn: bool(conn.open),
                close=_close,
                rollback=_rollback,
            )
        )

    __init__.__safehandler__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__

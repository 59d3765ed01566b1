"""SQLAlchemy 2.x: engines, connections, raw pool checkouts and Session transactions.

Everything comes from SQLAlchemy's own events (class-level listeners see every engine and pool,
including a module-level engine created before we attached), except engine creation, which has
no event: ``Engine.__init__`` is wrapped at class level so ``create_engine`` however imported is
seen. What owns what is recorded so each leak is reported once, through its owner: a Session
owns its Connection, a Connection owns its pool checkout, a pool owns its DBAPI connections.
"""

from __future__ import annotations

import functools
import os
import sys
import weakref
from types import ModuleType
from typing import Any

from .._records import Handle
from .._scope import registry
from .._sites import capture_site

__all__ = ["attach_core", "attach_orm"]

# Live DBAPI connections per engine, counted from pool connect/close events.
_pooled: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
# Checkouts not yet returned, by id of their pool record.
_checked_out: set[int] = set()


def _url(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=True))


def _site() -> Any:
    # sys._getframe(2): the event dispatcher's caller chain starts above our listener.
    return capture_site(sys._getframe(2))


def attach_core(base: ModuleType) -> None:
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    engine_cls = base.Engine
    original = engine_cls.__init__
    if getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, pool: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, pool, *args, **kwargs)
        _watch_pool(self, pool)
        if registry.recording:
            _engine_created(self)

    __init__.__safehandler__ = True  # type: ignore[attr-defined]
    engine_cls.__init__ = __init__

    event.listen(engine_cls, "engine_connect", _on_engine_connect)
    event.listen(Pool, "connect", _on_pool_connect)
    event.listen(Pool, "checkout", _on_checkout)
    event.listen(Pool, "checkin", _on_checkin)


def _watch_pool(engine: Any, pool: Any) -> None:
    """Count the engine's live DBAPI connections (dispose() recreates the pool, with these)."""
    from sqlalchemy import event

    engine_ref = weakref.ref(engine)
    _pooled[engine] = 0

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        owner = engine_ref()
        if owner is not None:
            _pooled[owner] = _pooled.get(owner, 0) + 1

    def on_close(dbapi_connection: Any, record: Any) -> None:
        owner = engine_ref()
        if owner is not None:
            _pooled[owner] = max(0, _pooled.get(owner, 0) - 1)

    event.listen(pool, "connect", on_connect)
    event.listen(pool, "close", on_close)
    event.listen(pool, "close_detached", lambda dbapi_connection: on_close(dbapi_connection, None))


def _on_pool_connect(dbapi_connection: Any, record: Any) -> None:
    """Any pool's new DBAPI connection is reported through its engine or checkout, not alone."""
    registry.supersede(dbapi_connection)
    registry.claim(dbapi_connection)
    if registry.recording and type(dbapi_connection).__module__ == "sqlite3":
        # no weak reference to a sqlite3 connection: its database file is claimed instead
        for _, _, path in dbapi_connection.execute("PRAGMA database_list").fetchall():
            if path:
                registry.claim_path(os.path.realpath(path))


def _engine_created(engine: Any) -> None:
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        registry.claim_path(os.path.realpath(engine.url.database))
    registry.add(
        Handle(
            noun="SQLAlchemy engine",
            detail=f"for {_url(engine)} created in the invocation, still holding connections",
            site=capture_site(sys._getframe(2)),
            ref=weakref.ref(engine),
            is_open=lambda e: _pooled.get(e, 0) > 0,
            close=lambda e: e.dispose(),
        )
    )


def _on_engine_connect(connection: Any) -> None:
    if not registry.recording:
        return
    registry.supersede(connection.connection)  # the checkout below this Connection
    registry.add(
        Handle(
            noun="SQLAlchemy connection",
            detail=f"to {_url(connection.engine)} never closed (not returned to the pool)",
            site=_site(),
            ref=weakref.ref(connection),
            is_open=lambda c: not c.closed,
            close=lambda c: c.close(),
            rollback=_rollback_connection,
        )
    )


def _rollback_connection(connection: Any) -> bool:
    if connection.in_transaction():
        connection.rollback()
        return True
    return False


def _on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    _checked_out.add(id(record))
    if not registry.recording:
        return
    key = id(record)
    registry.add(
        Handle(
            noun="SQLAlchemy raw connection",
            detail="checked out from the pool and never returned",
            site=_site(),
            ref=weakref.ref(proxy),
            is_open=lambda _proxy: key in _checked_out,
            close=lambda p: p.close(),
        )
    )


def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    _checked_out.discard(id(record))


def attach_orm(session_module: ModuleType) -> None:
    from sqlalchemy import event

    session_cls = session_module.Session
    if getattr(session_cls, "__safehandler__", False):
        return
    session_cls.__safehandler__ = True
    event.listen(session_cls, "after_begin", _on_session_begin)


def _on_session_begin(session: Any, transaction: Any, connection: Any) -> None:
    if not registry.recording:
        return
    registry.supersede(connection)  # the Session owns this Connection
    if registry.has_pending(session):
        return  # one handle per Session per invocation, however many engines it binds
    registry.add(
        Handle(
            noun="SQLAlchemy Session",
            detail=f"with an open transaction on {_url(connection.engine)}",
            site=_site(),
            ref=weakref.ref(session),
            is_open=lambda s: bool(s.in_transaction()),
            close=lambda s: s.close(),
            rollback=_rollback_session,
        )
    )


def _rollback_session(session: Any) -> bool:
    if session.in_transaction():
        session.rollback()
        return True
    return False

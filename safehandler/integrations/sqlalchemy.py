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
from collections.abc import Callable
from types import ModuleType

from .._records import Handle
from .._scope import Scope, current, owner_of, reporting_fault
from .._sites import capture_site
from ._use import track, used

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _F = TypeVar("_F", bound=Callable[..., None])

__all__ = ["attach_core", "attach_orm"]

# Live DBAPI connections per engine, counted from pool connect/close events.
_pooled: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
# Checkouts not yet returned, by id of their pool record.
_checked_out: set[int] = set()


def _url(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=True))


def _site() -> Any:
    # sys._getframe(3): the event dispatcher's caller chain starts above our listener and the
    # fail-open wrapper around it.
    return capture_site(sys._getframe(3))


def _fail_open(listener: _F) -> _F:
    """A listener's own fault is one warning, never an error in the user's database call."""

    @functools.wraps(listener)
    def run(*args: Any) -> None:
        try:
            listener(*args)
        except Exception as exc:  # noqa: BLE001 - the user's connection goes on
            reporting_fault("SQLAlchemy", exc)

    return run  # type: ignore[return-value]


def attach_core(sqlalchemy: ModuleType) -> None:
    """Attached once ``sqlalchemy`` itself is loaded: its event system is whole then."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    original = Engine.__init__
    if getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, pool: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, pool, *args, **kwargs)
        try:
            _watch_pool(self, pool)
            scope = current()
            if scope is not None:
                _engine_created(self, scope)
        except Exception as exc:  # noqa: BLE001 - the user's engine is made: keep it
            reporting_fault("SQLAlchemy", exc)

    __init__.__safehandler__ = True  # type: ignore[attr-defined]
    Engine.__init__ = __init__  # type: ignore[method-assign]

    event.listen(Engine, "engine_connect", _fail_open(_on_engine_connect))
    event.listen(Engine, "before_cursor_execute", _fail_open(_on_execute))
    event.listen(Pool, "connect", _fail_open(_on_pool_connect))
    event.listen(Pool, "checkout", _fail_open(_on_checkout))
    event.listen(Pool, "checkin", _fail_open(_on_checkin))
    _watch_raw_use()


def _watch_raw_use() -> None:
    """A raw connection kept and used again goes past SQLAlchemy's events: its proxy's
    ``cursor()`` is the one way in. (Private: without it, raw connections are reported only.)"""
    from sqlalchemy.pool import base

    fairy = getattr(base, "_ConnectionFairy", None)
    original = getattr(fairy, "cursor", None)
    if original is None or getattr(original, "__safehandler__", False):
        return

    @functools.wraps(original)
    def cursor(self: Any, *args: Any, **kwargs: Any) -> Any:
        used(self)
        return original(self, *args, **kwargs)

    cursor.__safehandler__ = True  # type: ignore[attr-defined]
    fairy.cursor = cursor  # type: ignore[union-attr]


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

    event.listen(pool, "connect", _fail_open(on_connect))
    event.listen(pool, "close", _fail_open(on_close))
    event.listen(
        pool,
        "close_detached",
        _fail_open(lambda dbapi_connection: on_close(dbapi_connection, None)),
    )


def _on_execute(conn: Any, cursor: Any, statement: Any, *args: Any) -> None:
    used(conn)  # a Connection kept and used again
    used(conn.engine)  # an engine kept and used again


def _on_pool_connect(dbapi_connection: Any, record: Any) -> None:
    """Any pool's new DBAPI connection is reported through its engine or checkout, not alone."""
    scope = current()
    if scope is None:
        return
    scope.supersede(dbapi_connection)
    scope.claim(dbapi_connection)
    if type(dbapi_connection).__module__ == "sqlite3":
        # no weak reference to a sqlite3 connection: its database file is claimed instead
        for _, _, path in dbapi_connection.execute("PRAGMA database_list").fetchall():
            if path:
                scope.claim_path(os.path.realpath(path))


def _engine_created(engine: Any, scope: Scope) -> None:
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        scope.claim_path(os.path.realpath(engine.url.database))
    handle = Handle(
        noun="SQLAlchemy engine",
        detail=f"for {_url(engine)} created in the invocation, still holding connections",
        site=capture_site(sys._getframe(3)),
        ref=weakref.ref(engine),
        is_open=lambda e: _pooled.get(e, 0) > 0,
        close=lambda e: e.dispose(),
    )
    scope.add_handle(handle)
    track(engine, handle)


def _on_engine_connect(connection: Any) -> None:
    scope = current()
    if scope is None:
        return
    scope.supersede(connection.connection)  # the checkout below this Connection
    handle = Handle(
        noun="SQLAlchemy connection",
        detail=f"to {_url(connection.engine)} never closed (not returned to the pool)",
        site=_site(),
        ref=weakref.ref(connection),
        is_open=lambda c: not c.closed,
        close=lambda c: c.close(),
        rollback=_rollback_connection,
    )
    scope.add_handle(handle)
    track(connection, handle)


def _rollback_connection(connection: Any) -> bool:
    if connection.in_transaction():
        connection.rollback()
        return True
    return False


def _on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    _checked_out.add(id(record))
    scope = current()
    if scope is None:
        return
    key = id(record)
    handle = Handle(
        noun="SQLAlchemy raw connection",
        detail="checked out from the pool and never returned",
        site=_site(),
        ref=weakref.ref(proxy),
        is_open=lambda _proxy: key in _checked_out,
        close=lambda p: p.close(),
    )
    scope.add_handle(handle)
    from sqlalchemy.pool import base

    if getattr(getattr(base, "_ConnectionFairy", None), "cursor", None) is not None:
        track(proxy, handle)


def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    _checked_out.discard(id(record))


def attach_orm(orm: ModuleType) -> None:
    """Attached once ``sqlalchemy.orm`` is loaded."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if getattr(Session, "__safehandler__", False):
        return
    Session.__safehandler__ = True  # type: ignore[attr-defined]
    event.listen(Session, "after_begin", _fail_open(_on_session_begin))


def _on_session_begin(session: Any, transaction: Any, connection: Any) -> None:
    used(session)  # a Session kept by an earlier invocation begins again
    scope = current()
    if scope is None:
        return
    scope.supersede(connection)  # the Session owns this Connection
    if scope.has_handle(session):
        return  # one handle per Session per invocation, however many engines it binds
    # where the Session was made, with this first query beside it (owners.py watches Session)
    owner = owner_of(session)
    site = _site() if owner is None else owner.attribute(_site())
    handle = Handle(
        noun="SQLAlchemy Session",
        detail=f"with an open transaction on {_url(connection.engine)}",
        site=site,
        ref=weakref.ref(session),
        is_open=lambda s: bool(s.in_transaction()),
        close=lambda s: s.close(),
        rollback=_rollback_session,
    )
    scope.add_handle(handle)
    track(session, handle)


def _rollback_session(session: Any) -> bool:
    if session.in_transaction():
        session.rollback()
        return True
    return False

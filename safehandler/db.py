"""The safe pattern, explicit: one unit of database work scoped to one invocation.

``with safehandler.db.scope(source) as db:`` commits when the block succeeds, rolls back when it
raises, and always closes. ``source`` is a SQLAlchemy ``Engine`` (you get a ``Connection``), a
``sessionmaker`` or ``Session`` class (a ``Session``), or any function returning a DB-API
connection such as ``functools.partial(pymysql.connect, ...)`` or ``sqlite3.connect``.
Importing this module imports no driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["scope"]


def _open(source: Any) -> Any:
    if hasattr(source, "dialect") and callable(getattr(source, "connect", None)):
        return source.connect()  # a SQLAlchemy Engine
    if callable(source):
        return source()  # a sessionmaker, a Session class, a DB-API connect function
    raise TypeError(
        f"scope() takes an Engine, a sessionmaker or a connect function, not {source!r}"
    )


@contextlib.contextmanager
def scope(source: Any) -> Iterator[Any]:
    """Open from ``source``; commit on success, roll back on error, always close."""
    db = _open(source)
    try:
        yield db
    except BaseException:
        with contextlib.suppress(Exception):  # the original error matters more
            db.rollback()
        raise
    else:
        db.commit()
    finally:
        db.close()

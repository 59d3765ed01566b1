"""``safehandler.db.scope``: commit on success, roll back on error, always close.

Judged from another connection on a real MariaDB/MySQL server: a committed row is visible
there, a rolled-back one is not, and a closed connection is gone from the server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from safehandler.db import scope

pytest.register_assert_rewrite("tests.db_fixtures")  # before it is imported

from .db_fixtures import Monitor  # noqa: E402

pytest_plugins = ["tests.db_fixtures"]


class RecordingSession(Session):
    """A Session that remembers being closed."""

    closed_count = 0

    def close(self) -> None:
        self.closed_count += 1
        super().close()


@dataclass
class Source:
    source: Any
    insert: Callable[[Any, str, int], None]  # (db, table, id)
    is_closed: Callable[[Any], bool]
    engine: Engine | None = None


def _insert_sqlalchemy(db: Any, table: str, row: int) -> None:
    db.execute(text(f"INSERT INTO {table} (id, v) VALUES (:id, 7)"), {"id": row})


def _insert_dbapi(db: Any, table: str, row: int) -> None:
    with db.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 7)", (row,))


@pytest.fixture(params=["engine", "sessionmaker", "pymysql_source"])
def source(request, mysql_url: URL, mysql_kwargs: dict[str, Any]) -> Iterator[Source]:
    if request.param == "pymysql_source":
        yield Source(
            functools.partial(pymysql.connect, **mysql_kwargs),
            _insert_dbapi,
            lambda conn: not conn.open,
        )
        return
    engine = create_engine(mysql_url.render_as_string(hide_password=False))
    try:
        if request.param == "engine":
            yield Source(engine, _insert_sqlalchemy, lambda conn: conn.closed, engine)
        else:
            yield Source(
                sessionmaker(engine, class_=RecordingSession),
                _insert_sqlalchemy,
                lambda session: session.closed_count == 1,
                engine,
            )
    finally:
        engine.dispose()


def _in_scope(source: Source, body: Callable[[Any], None], opened: list[Any]) -> None:
    """Run ``body`` in ``scope(source)``, keeping what it opened to check afterwards."""
    with scope(source.source) as db:
        opened.append(db)
        body(db)


def _rows(monitor: Monitor, table: str) -> list[int]:
    return [row for (row,) in monitor.query(f"SELECT id FROM {table} ORDER BY id")]


def _assert_closed(source: Source, db: Any, monitor: Monitor, baseline: int) -> None:
    assert source.is_closed(db)
    if source.engine is not None:
        assert source.engine.pool.checkedout() == 0  # returned to the pool
    else:
        assert monitor.settle(baseline) == baseline  # gone from the server


def test_commits_on_success(source: Source, table: str, monitor: Monitor) -> None:
    baseline = monitor.threads()
    with scope(source.source) as db:
        source.insert(db, table, 2)
        assert _rows(monitor, table) == [1]  # not yet committed: invisible elsewhere
    assert _rows(monitor, table) == [1, 2]
    _assert_closed(source, db, monitor, baseline)


def test_rolls_back_on_error_and_the_original_error_propagates(
    source: Source, table: str, monitor: Monitor
) -> None:
    baseline = monitor.threads()
    error = LookupError("the handler's own error")

    def fail(db: Any) -> None:
        source.insert(db, table, 2)
        raise error

    opened: list[Any] = []
    with pytest.raises(LookupError) as raised:
        _in_scope(source, fail, opened)
    assert raised.value is error
    assert _rows(monitor, table) == [1]
    _assert_closed(source, opened[0], monitor, baseline)


def test_rolls_back_on_a_base_exception_too(source: Source, table: str, monitor: Monitor) -> None:
    baseline = monitor.threads()

    def interrupted(db: Any) -> None:
        source.insert(db, table, 2)
        raise KeyboardInterrupt

    opened: list[Any] = []
    with pytest.raises(KeyboardInterrupt):
        _in_scope(source, interrupted, opened)
    assert _rows(monitor, table) == [1]
    _assert_closed(source, opened[0], monitor, baseline)


def test_a_failing_statement_rolls_back_and_still_closes(
    source: Source, table: str, monitor: Monitor
) -> None:
    baseline = monitor.threads()
    opened: list[Any] = []
    with pytest.raises(Exception, match="Duplicate entry"):
        # row 1 exists: the statement itself fails
        _in_scope(source, lambda db: source.insert(db, table, 1), opened)
    assert _rows(monitor, table) == [1]
    _assert_closed(source, opened[0], monitor, baseline)


def test_anything_else_is_a_type_error() -> None:
    message = "takes an Engine, a sessionmaker or a connect function"
    with pytest.raises(TypeError, match=message), scope(42):
        pass

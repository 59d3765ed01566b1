"""psycopg 3 and psycopg2 on a real PostgreSQL: libpq's sockets are DB connections with a site.

libpq opens its socket in C, past the audit hook. The judge is the server: the test role's
rows in ``pg_stat_activity``, counted from an admin connection of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import psycopg2
import pytest

import safehandler
from safehandler.testing import soak

from ._lines import line_of

pytest.register_assert_rewrite("tests.pg_fixtures")  # before it is imported

from .pg_fixtures import PgMonitor  # noqa: E402

pytest_plugins = ["tests.pg_fixtures"]

HERE = os.path.relpath(__file__)


@pytest.fixture
def kept() -> Iterator[list[Any]]:
    items: list[Any] = []
    yield items
    for conn in items:
        conn.close()


def leaky_psycopg(dsn: str, kept: list[Any]) -> Callable[..., Any]:
    def handler(event: Any, context: Any) -> Any:
        conn = psycopg.connect(dsn)  # leak-psycopg
        kept.append(conn)
        return conn.execute("SELECT 1").fetchone()

    return handler


def leaky_psycopg2(dsn: str, kept: list[Any]) -> Callable[..., Any]:
    def handler(event: Any, context: Any) -> Any:
        conn = psycopg2.connect(dsn)  # leak-psycopg2
        kept.append(conn)
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()

    return handler


def clean_psycopg(dsn: str) -> Callable[..., Any]:
    def handler(event: Any, context: Any) -> Any:
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT 1").fetchone()

    return handler


def clean_psycopg2(dsn: str) -> Callable[..., Any]:
    def handler(event: Any, context: Any) -> Any:
        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone()
        finally:
            conn.close()

    return handler


PSYCOPG_VIA = "psycopg.connection.Connection.connect"
CASES = [
    ("psycopg", leaky_psycopg, "psycopg connection", PSYCOPG_VIA, "leak-psycopg"),
    ("psycopg2", leaky_psycopg2, "psycopg2 connection", "psycopg2.connect", "leak-psycopg2"),
]


@pytest.mark.parametrize(("driver", "make", "noun", "via", "marker"), CASES)
def test_a_connection_per_call_is_one_db_connection_finding_at_the_connect_line(
    driver: str,
    make: Callable[..., Any],
    noun: str,
    via: str,
    marker: str,
    pg_dsn: str,
    pg_monitor: PgMonitor,
    kept: list[Any],
) -> None:
    # release=False: what the soak left behind is looked at from the server
    report = soak(make(pg_dsn, kept), invocations=30, release=False)
    assert pg_monitor.settle(30) == 30  # report only: the server holds all of them
    [finding] = report.findings  # the connection, not also its libpq socket
    assert (finding.kind, finding.noun, finding.count) == ("db_connection", noun, 30)
    assert finding.site is not None
    assert finding.site.location == f"{HERE}:{line_of(marker)}"
    assert (finding.site.function, finding.site.via) == ("handler", via)
    assert finding.detail == f"to {pg_monitor.user}@127.0.0.1:5432/test"
    assert "unknown site" not in str(report)


@pytest.mark.parametrize(("driver", "make", "noun", "via", "marker"), CASES)
def test_cleanup_all_closes_what_each_invocation_left_open(
    driver: str,
    make: Callable[..., Any],
    noun: str,
    via: str,
    marker: str,
    guarded: Any,
    pg_dsn: str,
    pg_monitor: PgMonitor,
    kept: list[Any],
) -> None:
    guard = guarded(make(pg_dsn, kept), db_cleanup="all")
    for invocation in range(1, 21):
        assert guard(1) == [(1,)], invocation  # the handler keeps working
        assert pg_monitor.settle(0) == 0, invocation
    assert all(conn.closed for conn in kept)
    first = guard.findings[0]  # closed by safehandler, still left open by the handler
    assert (first.noun, first.count, first.invocation) == (noun, 2, 2)
    assert first.detail.endswith("(safehandler cleaned up 1 of them)")


def test_cleanup_leaks_closes_a_sustained_psycopg_leak(
    guarded: Any, pg_dsn: str, pg_monitor: PgMonitor, kept: list[Any]
) -> None:
    """psycopg 3 tells each use: connections never used again are closed once the site grew
    in more invocations than a bounded cache shows; the server stays bounded."""
    guard = guarded(leaky_psycopg(pg_dsn, kept), db_cleanup="leaks")
    for _ in range(40):
        assert guard(1) == [(1,)]
    assert pg_monitor.read() <= 10
    assert sum(not conn.closed for conn in kept) <= 10


def test_cleanup_leaks_keeps_a_psycopg_connection_used_again(
    guarded: Any, pg_dsn: str, pg_monitor: PgMonitor
) -> None:
    """A connection kept in a module-level dict and reused is a cache: never closed."""
    cache: dict[str, psycopg.Connection[Any]] = {}

    def handler(event: Any, context: Any) -> Any:
        conn = cache.get("db")
        if conn is None:
            conn = cache["db"] = psycopg.connect(pg_dsn, autocommit=True)
        return conn.execute("SELECT 1").fetchone()

    try:
        guard = guarded(handler, db_cleanup="leaks")
        assert guard(30) == [(1,)] * 30
        assert guard.findings == []
        assert not cache["db"].closed
        assert pg_monitor.read() == 1
    finally:
        cache["db"].close()


@pytest.mark.parametrize("make", [clean_psycopg, clean_psycopg2])
def test_the_clean_twins_are_clean_in_a_soak_and_in_production(
    make: Callable[..., Any], pg_dsn: str, pg_monitor: PgMonitor
) -> None:
    handler = make(pg_dsn)
    report = soak(handler, invocations=100)
    assert report.clean, str(report)
    production = safehandler.guard(handler, mode="strict")
    for _ in range(20):
        assert tuple(production({}, None)) == (1,)
    assert pg_monitor.settle(0) == 0

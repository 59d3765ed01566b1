"""Correct handlers stay correct under the guard, on a real MariaDB over TCP.

Thread-per-request servers (a handler served from a container), nested guarded handlers and
bounded connection caches: nothing committed is lost, no protocol error, no false finding,
every invocation answered. And the field report's leak still ends bounded, with 0 failures.
What the server holds is counted for this test's own database user only.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymysql
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import sessionmaker

import safehandler
from safehandler.guard import engine_of
from safehandler.testing import FakeLambdaContext
from safehandler.verdicts import SUSTAINED_GROWTH

pytest.register_assert_rewrite("tests.db_fixtures")  # before it is imported

from .db_fixtures import Kept, Monitor  # noqa: E402

pytest_plugins = ["tests.db_fixtures"]

INVOCATIONS = 1500


def _rows(monitor: Monitor, table: str) -> set[int]:
    return {int(row) for (row,) in monitor.query(f"SELECT id FROM {table} WHERE id > 1")}


def test_thread_per_request_sessions_keep_every_commit_and_report_nothing(
    mysql_url: URL, table: str, monitor: Monitor
) -> None:
    """8 worker threads, 40 requests of mixed durations, a Session per request, strict mode:
    every answer has its row, no protocol error, no finding on this clean handler."""
    engine = create_engine(mysql_url.render_as_string(hide_password=False), pool_size=8)
    make_session = sessionmaker(engine)

    @safehandler.guard(mode="strict")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with make_session() as session, session.begin():
            session.execute(text(f"INSERT INTO {table} VALUES (:id, 0)"), {"id": event["id"]})
            time.sleep(event["pause"])  # overlapping transactions, on different connections
        return {"statusCode": 200, "id": event["id"]}

    rng = random.Random(7)
    events = [{"id": n, "pause": rng.choice((0.0, 0.005, 0.02, 0.05))} for n in range(2, 42)]
    try:
        with ThreadPoolExecutor(max_workers=8) as server:
            answers = list(server.map(lambda e: handler(e, FakeLambdaContext()), events))
    finally:
        engine.dispose()
    assert [answer["statusCode"] for answer in answers] == [200] * 40
    assert _rows(monitor, table) == {event["id"] for event in events}


def test_a_leak_in_one_request_is_reported_without_touching_the_others(
    mysql_kwargs: dict[str, Any], table: str, monitor: Monitor, kept: Kept
) -> None:
    """Concurrent requests: one kind leaks a connection per call; the others commit through
    their own. The leak is found and attributed; nobody else's work is rolled back."""
    findings: list[Any] = []
    lock = threading.Lock()

    @safehandler.guard(db_cleanup="leaks", thread_grace_ms=0)
    def handler(event: dict[str, Any], context: Any) -> int:
        conn = pymysql.connect(**mysql_kwargs)
        if event["leak"]:
            with lock:
                kept.append(conn)  # leak-in-request
            return 0
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"INSERT INTO {table} VALUES (%s, 0)", (event["id"],))
                time.sleep(0.01)
            conn.commit()
        finally:
            conn.close()
        return event["id"]

    guard_engine = engine_of(handler)
    assert guard_engine is not None
    with guard_engine.observe(lambda inv: findings.extend(inv.findings), quiet=True):
        events = [{"id": n, "leak": n % 4 == 0} for n in range(2, 42)]
        with ThreadPoolExecutor(max_workers=4) as server:
            answers = list(server.map(lambda e: handler(e, FakeLambdaContext()), events))
    committed = {e["id"] for e in events if not e["leak"]}
    assert sorted(a for a in answers if a) == sorted(committed)
    assert _rows(monitor, table) == committed
    leaks = [f for f in findings if f.kind == "db_connection"]
    assert leaks, "the per-call leak is found even among concurrent requests"
    assert all(f.noun == "PyMySQL connection" for f in leaks)
    assert {f.site.function for f in leaks if f.site} == {"handler"}


def test_nested_guarded_handlers_commit(mysql_url: URL, table: str, monitor: Monitor) -> None:
    """A guarded router calling a guarded handler: one invocation, owned by the outermost;
    the inner one's end rolls nothing back."""
    engine = create_engine(mysql_url.render_as_string(hide_password=False))
    make_session = sessionmaker(engine)

    @safehandler.guard(db_cleanup="all")
    def inner(event: dict[str, Any], context: Any) -> int:
        session = event["session"]
        session.execute(text(f"INSERT INTO {table} VALUES (:id, 0)"), {"id": event["id"]})
        return int(event["id"])

    @safehandler.guard(db_cleanup="all")
    def router(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with make_session() as session, session.begin():
            ids = [inner({"session": session, "id": n}, context) for n in event["ids"]]
        return {"statusCode": 200, "ids": ids}

    try:
        for batch in ([2, 3], [4], [5, 6, 7], [8], [9]):
            assert router({"ids": batch}, FakeLambdaContext())["statusCode"] == 200
    finally:
        engine.dispose()
    assert _rows(monitor, table) == set(range(2, 10))


def _run(handler: Any, events: list[Any]) -> list[BaseException]:
    errors: list[BaseException] = []
    for event in events:
        try:
            handler(event, FakeLambdaContext())
        except Exception as exc:
            errors.append(exc)
    return errors


@pytest.mark.slow
def test_bounded_caches_answer_every_invocation(
    mysql_kwargs: dict[str, Any], monitor: Monitor
) -> None:
    """Three correct caches under the default policy, 1,500 invocations each: a dict of two
    per-tenant connections, a reader/writer pair made by one helper, a pool of three."""
    tenants: dict[str, pymysql.connections.Connection] = {}
    pair: dict[str, pymysql.connections.Connection] = {}
    pool: list[pymysql.connections.Connection] = []

    server_ids: dict[int, int] = {}  # connection -> its server thread when it was made

    def connect() -> pymysql.connections.Connection:
        conn = pymysql.connect(**mysql_kwargs)
        server_ids[id(conn)] = conn.thread_id()
        return conn

    def query(conn: pymysql.connections.Connection) -> int:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            (value,) = cursor.fetchone()
        return int(value)

    @safehandler.guard
    def per_tenant(event: dict[str, Any], context: Any) -> int:
        conn = tenants.get(event["tenant"])
        if conn is None:
            conn = tenants[event["tenant"]] = connect()
        return query(conn)

    @safehandler.guard
    def reader_writer(event: dict[str, Any], context: Any) -> int:
        if not pair:
            pair["reader"], pair["writer"] = connect(), connect()
        return query(pair["reader"]) + query(pair["writer"])

    @safehandler.guard
    def hand_pool(event: dict[str, Any], context: Any) -> int:
        if len(pool) < 3:
            pool.append(connect())  # one more per invocation until there are three
        return query(pool[event["n"] % len(pool)])

    rng = random.Random(3)
    try:
        tenant_events = [{"tenant": rng.choice("ab")} for _ in range(INVOCATIONS)]
        assert _run(per_tenant, tenant_events) == []
        assert _run(reader_writer, [{}] * INVOCATIONS) == []
        assert _run(hand_pool, [{"n": n} for n in range(INVOCATIONS)]) == []
        cached = [*tenants.values(), *pair.values(), *pool]
        assert all(conn.open for conn in cached)
        # never closed behind the handler's back (a reopened one has a new server thread)
        assert {id(conn): conn.thread_id() for conn in cached} == server_ids
        assert monitor.settle(7) == 7  # the 2 + 2 + 3 cached connections, nothing else
    finally:
        for conn in [*tenants.values(), *pair.values(), *pool]:
            conn.close()


def test_a_cache_larger_than_the_evidence_loses_nothing(
    mysql_kwargs: dict[str, Any], monitor: Monitor
) -> None:
    """A per-tenant cache that grows in more invocations than the cleanup's threshold before
    any reuse: connections the cleanup closes come back when their tenant does."""
    tenants: dict[int, pymysql.connections.Connection] = {}

    @safehandler.guard
    def handler(event: dict[str, Any], context: Any) -> int:
        conn = tenants.get(event["tenant"])
        if conn is None:
            conn = tenants[event["tenant"]] = pymysql.connect(**mysql_kwargs)
        with conn.cursor() as cursor:
            cursor.execute("SELECT %s", (event["tenant"],))
            (value,) = cursor.fetchone()
        return int(value)

    count = SUSTAINED_GROWTH + 4
    first_round = [{"tenant": n} for n in range(count)]  # every tenant new: growth, no reuse
    try:
        assert _run(handler, first_round) == []
        assert _run(handler, first_round * 3) == []  # every tenant again: answered
        assert all(conn.open for conn in tenants.values())
    finally:
        for conn in tenants.values():
            conn.close()


@pytest.mark.slow
def test_the_field_report_leak_ends_bounded_with_no_failure(
    mysql_kwargs: dict[str, Any], monitor: Monitor, kept: Kept
) -> None:
    @safehandler.guard
    def handler(event: Any, context: Any) -> int:
        conn = pymysql.connect(**mysql_kwargs)
        kept.append(conn)  # "to reuse later": never used again
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        return 1

    bound = SUSTAINED_GROWTH + 1
    for invocation in range(1, INVOCATIONS + 1):
        assert handler({}, FakeLambdaContext()) == 1, invocation
        if invocation % 100 == 0:
            assert monitor.at_most(bound) <= bound, invocation
    assert sum(conn.open for conn in kept) <= bound

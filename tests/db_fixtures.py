"""Shared fixtures of the DB tests: a real MariaDB/MySQL server, watched from outside.

Test modules load this as a plugin (``pytest_plugins = ["tests.db_fixtures"]``). The server is
``$SAFEHANDLER_TEST_MYSQL_URL`` (default ``mysql+pymysql://root:@127.0.0.1:3306/test``). When it
does not answer, the tests that need it are skipped, except under CI (``CI=true``), where they
fail: CI promises a server, so a missing one is a broken build, not a reason to pass.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pymysql
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

import safehandler.db
from safehandler.verdicts import SUSTAINED_GROWTH

from ._lines import line_of

DEFAULT_MYSQL_URL = "mysql+pymysql://root:@127.0.0.1:3306/test"
PASSWORD = "Pw-s3cret-42"  # the test user's password: it must never appear in any output
PASSWORD_USER = "sh_test"
FIXTURES = os.path.relpath(__file__)  # sites in this file, as safehandler displays them


def mysql_url_from_env() -> URL:
    return make_url(os.environ.get("SAFEHANDLER_TEST_MYSQL_URL", DEFAULT_MYSQL_URL))


def connect_kwargs(url: URL) -> dict[str, Any]:
    """``pymysql.connect`` keyword arguments for ``url``."""
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
        "database": url.database,
    }


def expected_detail(url: URL) -> str:
    """What safehandler says a PyMySQL connection to ``url`` points to."""
    kwargs = connect_kwargs(url)
    return f"to {kwargs['user']}@{kwargs['host']}:{kwargs['port']}/{kwargs['database'] or ''}"


def close_quietly(item: Any) -> None:
    """Close a connection, Session, raw connection or engine, whatever state it is in."""
    if isinstance(item, pymysql.connections.Connection):
        if item.open:
            item.close()
        return
    dispose = getattr(item, "dispose", None)
    if dispose is not None:  # an Engine
        dispose()
        return
    with contextlib.suppress(Exception):  # a half-closed driver object is closed enough
        item.close()


class Kept(list[Any]):
    """Where a leaking handler keeps what it leaks; everything is closed at teardown."""

    def close_all(self) -> None:
        # Sessions and connections before the engines they came from.
        engines = [item for item in self if hasattr(item, "dispose")]
        for item in self:
            if not hasattr(item, "dispose"):
                close_quietly(item)
        for engine in engines:
            close_quietly(engine)


@pytest.fixture
def kept() -> Iterator[Kept]:
    items = Kept()
    yield items
    items.close_all()


# -- the server -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server_url() -> URL:
    """The server's URL, once it answered; skip (or, under CI, fail) when it does not."""
    url = mysql_url_from_env()
    try:
        conn = pymysql.connect(**connect_kwargs(url), connect_timeout=3)
    except pymysql.err.MySQLError as exc:
        where = url.render_as_string(hide_password=True)
        reason = (
            f"no MariaDB/MySQL server answers at {where} ({exc.args[-1]}); "
            "start one or set SAFEHANDLER_TEST_MYSQL_URL"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, so a missing server is an error: {reason}", pytrace=False)
        pytest.skip(reason)
    conn.close()
    return url


@pytest.fixture
def mysql_url(server_url: URL) -> Iterator[URL]:
    """The server as a user of this test's own, so that what the test counts on the server is
    its own: other clients (another test run, a developer's shell) may share the server. No
    global setting of the server is changed."""
    admin = pymysql.connect(**connect_kwargs(server_url), autocommit=True)
    user = f"sh_{uuid.uuid4().hex[:10]}"
    hosts = ("%", "localhost")
    try:
        with admin.cursor() as cursor:
            for host in hosts:
                cursor.execute("CREATE USER %s@%s", (user, host))
                cursor.execute(f"GRANT ALL ON `{server_url.database}`.* TO %s@%s", (user, host))
        yield server_url.set(username=user, password="")
    finally:
        with admin.cursor() as cursor:
            # its connections first: a leaked one would outlive the user otherwise
            cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
            for (thread_id,) in cursor.fetchall():
                with contextlib.suppress(pymysql.err.MySQLError):
                    cursor.execute(f"KILL {int(thread_id)}")
            for host in hosts:
                cursor.execute("DROP USER IF EXISTS %s@%s", (user, host))
        admin.close()


@pytest.fixture
def mysql_kwargs(mysql_url: URL) -> dict[str, Any]:
    return connect_kwargs(mysql_url)


@dataclass
class Monitor:
    """A connection of its own (as the server's admin) that watches the server: how many
    connections the test's own user has open."""

    conn: pymysql.connections.Connection
    user: str

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def threads(self) -> int:
        [(count,)] = self.query(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (self.user,)
        )
        return int(count)

    read = threads

    def quiesce(self, timeout: float = 5.0) -> None:
        """Wait for the user's connections closed meanwhile to be gone from the server (it ends
        a closed client's thread a moment later), so a baseline taken now is the real one."""
        deadline = time.monotonic() + timeout
        last = self.threads()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.threads()
            if now == last:
                return
            last = now

    def at_most(self, limit: int, timeout: float = 3.0) -> int:
        """The user's connections once they are ``limit`` or fewer, or whatever they are when
        ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.threads()
            if now <= limit or time.monotonic() > deadline:
                return now
            time.sleep(0.005)

    def settle(self, expected: int, timeout: float = 3.0) -> int:
        """The user's connections once they are ``expected`` (a closed client's server thread ends
        a moment after the client hung up), or whatever it is when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.threads()
            if now == expected or time.monotonic() > deadline:
                return now
            time.sleep(0.005)


@pytest.fixture
def monitor(server_url: URL, mysql_url: URL) -> Iterator[Monitor]:
    conn = pymysql.connect(**connect_kwargs(server_url), autocommit=True)
    try:
        with conn.cursor() as cursor:
            # DROP TABLE at teardown must not wait a day for a leaked transaction's lock.
            cursor.execute("SET SESSION lock_wait_timeout = 10")
        monitor = Monitor(conn, mysql_url.username or "")
        monitor.quiesce()
        yield monitor
    finally:
        conn.close()


@pytest.fixture
def table(monitor: Monitor, kept: Kept) -> Iterator[str]:
    """A table of our own in the test database: ``(id INT PRIMARY KEY, v INT)``, row 1 = 0."""
    name = f"sh_test_{uuid.uuid4().hex[:12]}"
    monitor.query(f"CREATE TABLE {name} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
    monitor.query(f"INSERT INTO {name} VALUES (1, 0)")
    try:
        yield name
    finally:
        kept.close_all()  # a leaked transaction would hold a lock DROP TABLE waits for
        monitor.query(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def other(mysql_kwargs: dict[str, Any]) -> Iterator[pymysql.connections.Connection]:
    """Another client, which gives up on a row lock after one second."""
    conn = pymysql.connect(**mysql_kwargs, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        yield conn
    finally:
        conn.close()


@pytest.fixture
def password_url(server_url: URL, monitor: Monitor) -> Iterator[URL]:
    """The server's URL as a user with a password (created here, dropped at teardown)."""
    hosts = ("%", "localhost")
    for host in hosts:
        user = (PASSWORD_USER, host)
        monitor.query("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (*user, PASSWORD))
        monitor.query(f"GRANT ALL ON `{server_url.database}`.* TO %s@%s", user)
    try:
        yield server_url.set(username=PASSWORD_USER, password=PASSWORD)
    finally:
        for host in hosts:
            monitor.query("DROP USER IF EXISTS %s@%s", (PASSWORD_USER, host))


def timed(call: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """How long ``call`` took, and what it raised."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


# -- SQLAlchemy handlers: each leak, and its clean twin ---------------------------------
# The sites reported for these are lines of this file, found by their marker comments.

Handler = Callable[[Any, Any], Any]
SELECT_1 = text("SELECT 1")


def leak_engine(url: str, kept: Kept) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        engine = create_engine(url)  # leak-engine
        kept.append(engine)
        with engine.connect() as conn:
            return conn.execute(SELECT_1).scalar()

    return handler


def leak_session(engine: Engine, kept: Kept) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        session = Session(engine)  # leak-session
        kept.append(session)
        return session.execute(SELECT_1).scalar()

    return handler


def leak_connection(engine: Engine, kept: Kept) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        conn = engine.connect()  # leak-connection
        kept.append(conn)
        return conn.execute(SELECT_1).scalar()

    return handler


def leak_raw(engine: Engine, kept: Kept) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        raw = engine.raw_connection()  # leak-raw
        kept.append(raw)
        cursor = raw.cursor()
        cursor.execute("SELECT 1")
        (value,) = cursor.fetchone()
        cursor.close()
        return value

    return handler


@dataclass(frozen=True)
class Leak:
    make: Callable[[Any, Kept], Handler]  # (url or the module-level engine, kept) -> handler
    noun: str
    marker: str
    per_invocation_engine: bool = False

    def __str__(self) -> str:
        return self.marker.removeprefix("leak-")


LEAKS = [
    Leak(leak_engine, "SQLAlchemy engine", "leak-engine", per_invocation_engine=True),
    Leak(leak_session, "SQLAlchemy Session", "leak-session"),
    Leak(leak_connection, "SQLAlchemy connection", "leak-connection"),
    Leak(leak_raw, "SQLAlchemy raw connection", "leak-raw"),
]


def clean_connect(engine: Engine) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        with engine.connect() as conn:
            return conn.execute(SELECT_1).scalar()

    return handler


def clean_session(engine: Engine) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        with Session(engine) as session, session.begin():
            return session.execute(SELECT_1).scalar()

    return handler


def clean_scope_engine(engine: Engine) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        with safehandler.db.scope(engine) as conn:
            return conn.execute(SELECT_1).scalar()

    return handler


def clean_scope_sessionmaker(engine: Engine) -> Handler:
    factory = sessionmaker(engine)

    def handler(event: Any, context: Any) -> Any:
        with safehandler.db.scope(factory) as session:
            return session.execute(SELECT_1).scalar()

    return handler


def clean_raw(engine: Engine) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            (value,) = cursor.fetchone()
            cursor.close()
        finally:
            raw.close()
        return value

    return handler


CLEAN_TWINS = {
    "with-engine-connect": clean_connect,
    "with-session-begin": clean_session,
    "scope-engine": clean_scope_engine,
    "scope-sessionmaker": clean_scope_sessionmaker,
    "raw-closed": clean_raw,
}


def lock_in_session(engine: Engine, table: str, kept: Kept) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        session = Session(engine)  # lock-session
        kept.append(session)
        session.execute(text(f"UPDATE {table} SET v = v + 1 WHERE id = 1"))
        return "updated"

    return handler


def lock_in_connection(engine: Engine, table: str, kept: Kept) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        conn = engine.connect()  # lock-connection
        kept.append(conn)
        conn.execute(text(f"UPDATE {table} SET v = v + 1 WHERE id = 1"))
        return "updated"

    return handler


LOCKERS = {
    "session": (lock_in_session, "SQLAlchemy Session", "lock-session"),
    "connection": (lock_in_connection, "SQLAlchemy connection", "lock-connection"),
}


class Gauge(Protocol):
    """What the database side holds: server connections, or fds open on a SQLite file."""

    def read(self) -> int: ...

    def settle(self, expected: int) -> int: ...


class SqlAlchemyCases:
    """The SQLAlchemy cases, run on each backend by a subclass in a test module.

    The subclass provides the fixtures ``url`` (a URL string), ``engine`` (a module-level
    engine, disposed at teardown), ``gauge`` (what the database holds), ``table`` (a table with
    row ``id = 1``), ``try_update`` (another client's UPDATE of that row: seconds taken, error)
    and ``read_v`` (that row's ``v``).
    """

    @staticmethod
    def _handler(leak: Leak, url: str, engine: Engine, kept: Kept) -> Handler:
        return leak.make(url if leak.per_invocation_engine else engine, kept)

    @staticmethod
    def _warm(engine: Engine) -> None:
        with engine.connect():  # the module-level engine's pool holds one connection
            pass

    @staticmethod
    def _assert_released(engine: Engine, gauge: Gauge, baseline: int, invocation: int) -> None:
        """Nothing checked out, and the database holds only what the module-level engine's
        pool keeps idle for reuse (a checkout closed by cleanup goes back to its pool)."""
        assert engine.pool.checkedout() == 0, invocation
        expected = baseline - 1 + engine.pool.checkedin()  # the baseline has the warm one
        assert gauge.settle(expected) == expected, invocation

    @pytest.mark.parametrize("leak", LEAKS, ids=str)
    def test_leak_is_reported_at_the_first_growing_invocation_with_its_site(
        self, leak: Leak, guarded, kept: Kept, url: str, engine: Engine, gauge: Gauge
    ) -> None:
        self._warm(engine)
        baseline = gauge.read()
        guard = guarded(self._handler(leak, url, engine, kept), db_cleanup="off")
        assert guard(1) == [1]
        assert guard.findings == []  # retained once: it could be a lazily created cache
        assert guard(2) == [1, 1]
        # one finding, through the handle that owns the connection: not also its socket or file
        assert [(f.kind, f.noun) for f in guard.findings] == [("db_connection", leak.noun)]
        [finding] = guard.findings
        assert (finding.kind, finding.noun, finding.count) == ("db_connection", leak.noun, 2)
        assert (finding.first_invocation, finding.invocation) == (1, 2)
        assert finding.site is not None
        assert finding.site.location == f"{FIXTURES}:{line_of(leak.marker, __file__)}"
        assert finding.site.function == "handler"
        # report only: everything leaked is still held
        held = 3 if leak.per_invocation_engine else 2  # the pooled connection is reused once
        assert gauge.settle(baseline + held) == baseline + held
        assert engine.pool.checkedout() == (0 if leak.per_invocation_engine else 3)

    @pytest.mark.parametrize("leak", LEAKS, ids=str)
    def test_cleanup_all_releases_everything_after_every_invocation(
        self, leak: Leak, guarded, kept: Kept, url: str, engine: Engine, gauge: Gauge
    ) -> None:
        self._warm(engine)
        baseline = gauge.read()
        guard = guarded(self._handler(leak, url, engine, kept), db_cleanup="all")
        for invocation in range(1, 21):
            assert guard(1) == [1], invocation
            self._assert_released(engine, gauge, baseline, invocation)
        # cleaned up, yet left open by the handler: still reported, and said so
        first = guard.findings[0]
        assert (first.noun, first.count, first.invocation) == (leak.noun, 2, 2)
        assert first.detail.endswith("(safehandler cleaned up 1 of them)")

    @pytest.mark.parametrize("leak", LEAKS, ids=str)
    def test_cleanup_leaks_releases_a_sustained_leak(
        self, leak: Leak, guarded, kept: Kept, url: str, engine: Engine, gauge: Gauge
    ) -> None:
        """Kept while it could still be a cache (the site grew in fewer invocations than a
        bounded cache does before its first reuse); released once it cannot, and what is
        held stays bounded below the pool's limit: every invocation answers."""
        self._warm(engine)
        baseline = gauge.read()
        guard = guarded(self._handler(leak, url, engine, kept), db_cleanup="leaks")
        assert guard(1) == [1]
        for invocation in range(2, SUSTAINED_GROWTH):
            assert guard(1) == [1], invocation
        # (a Session gives its connection back when its transaction is rolled back)
        holds = not leak.per_invocation_engine and leak.noun != "SQLAlchemy Session"
        assert engine.pool.checkedout() == (SUSTAINED_GROWTH - 1 if holds else 0)
        for invocation in range(SUSTAINED_GROWTH, 31):
            assert guard(1) == [1], invocation
            assert engine.pool.checkedout() <= 1, invocation  # only this invocation's own
        held = gauge.read() - baseline
        assert held <= SUSTAINED_GROWTH, held
        first = guard.findings[0]
        assert (first.noun, first.count, first.invocation) == (leak.noun, 2, 2)

    @pytest.mark.parametrize("twin", list(CLEAN_TWINS))
    def test_clean_twin_reports_nothing(
        self, twin: str, guarded, engine: Engine, gauge: Gauge
    ) -> None:
        baseline = gauge.read()
        guard = guarded(CLEAN_TWINS[twin](engine), db_cleanup="off")
        assert guard(20) == [1] * 20
        assert guard.findings == []
        assert engine.pool.checkedout() == 0
        # the module-level engine's one pooled connection, opened lazily, is reuse
        assert gauge.settle(baseline + 1) == baseline + 1

    @pytest.mark.parametrize("holder", list(LOCKERS))
    def test_transaction_left_open_holds_its_lock_without_cleanup(
        self, holder: str, guarded, kept: Kept, engine: Engine, table: str, try_update, read_v
    ) -> None:
        make, _, _ = LOCKERS[holder]
        guard = guarded(make(engine, table, kept), db_cleanup="off")
        assert guard(1) == ["updated"]
        seconds, error = try_update()
        assert error is not None, "the other client got the row the handler left locked"
        assert "lock" in str(error).lower()
        assert seconds >= 0.4  # it waited for the lock, then gave up

    @pytest.mark.parametrize("mode", ["all", "leaks"])
    @pytest.mark.parametrize("holder", list(LOCKERS))
    def test_cleanup_rolls_back_the_open_transaction_and_frees_the_row(
        self,
        holder: str,
        mode: str,
        guarded,
        kept: Kept,
        engine: Engine,
        table: str,
        try_update,
        read_v,
    ) -> None:
        make, noun, marker = LOCKERS[holder]
        guard = guarded(make(engine, table, kept), db_cleanup=mode)
        for invocation in (1, 2):
            assert guard(1) == ["updated"]
            seconds, error = try_update()
            assert error is None, f"invocation {invocation}: {error}"
            assert seconds < 0.4, invocation  # promptly: nothing held the row
        assert read_v() == 2  # the other client's two updates; the handler's rolled back
        assert [(f.kind, f.noun) for f in guard.findings] == [("db_connection", noun)]
        [finding] = guard.findings
        assert (finding.noun, finding.count, finding.invocation) == (noun, 2, 2)
        assert finding.site is not None
        assert finding.site.location == f"{FIXTURES}:{line_of(marker, __file__)}"
        # all: closed; leaks: rolled back, but kept open (it may be a cache, for all we know),
        # except a Session, which gives its connection back with its transaction
        kept_open = mode == "leaks" and holder == "connection"
        assert engine.pool.checkedout() == (2 if kept_open else 0)

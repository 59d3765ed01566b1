"""DB connections on a real MariaDB/MySQL over TCP: the field report's failure, found and fixed.

What the server says (``Threads_connected``, seen from a separate monitoring connection, and
row locks another client waits for) is the judge, not safehandler's own bookkeeping.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

import safehandler
from safehandler.guard import engine_of
from safehandler.policy import Policy
from safehandler.testing import FakeLambdaContext, soak

from ._lines import line_of

pytest.register_assert_rewrite("tests.db_fixtures")  # before it is imported

from safehandler.verdicts import SUSTAINED_GROWTH  # noqa: E402

from .db_fixtures import (  # noqa: E402
    PASSWORD,
    PASSWORD_USER,
    Kept,
    Monitor,
    SqlAlchemyCases,
    connect_kwargs,
    expected_detail,
    timed,
)

pytest_plugins = ["tests.db_fixtures"]

HERE = os.path.relpath(__file__)
ROOT = Path(__file__).resolve().parent.parent


def leaky_pymysql(kwargs: dict[str, Any], kept: Kept) -> Any:
    """The field report's handler: a connection per invocation, kept "to reuse later"."""

    def handler(event, context):
        conn = pymysql.connect(**kwargs)  # leak-pymysql
        kept.append(conn)
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            (value,) = cursor.fetchone()
        return value

    return handler


# -- the seed scenario: PyMySQL, a connection per invocation --------------------------


def test_without_safehandler_every_invocation_leaves_a_connection_on_the_server(
    mysql_kwargs, monitor: Monitor, kept: Kept
) -> None:
    handler = leaky_pymysql(mysql_kwargs, kept)
    baseline = monitor.threads()
    for _ in range(60):  # (MariaDB's max_connections, 151 by default, is the server's)
        assert handler({}, FakeLambdaContext()) == 1
    assert monitor.threads() == baseline + 60


def test_report_mode_names_the_connect_line_at_the_first_growing_invocation(
    guarded, mysql_kwargs, mysql_url: URL, monitor: Monitor, kept: Kept
) -> None:
    baseline = monitor.threads()
    guard = guarded(leaky_pymysql(mysql_kwargs, kept), db_cleanup="off")
    assert guard(1) == [1]
    assert guard.findings == []  # retained once: it could be a lazily created cache
    assert guard(1) == [1]
    [finding] = guard.findings  # one finding: the connection, not also its socket
    assert (finding.kind, finding.noun, finding.count) == ("db_connection", "PyMySQL connection", 2)
    assert (finding.first_invocation, finding.invocation) == (1, 2)
    assert finding.site is not None
    assert finding.site.location == f"{HERE}:{line_of('leak-pymysql')}"
    assert (finding.site.function, finding.site.via) == ("handler", "pymysql.connect")
    assert finding.detail == expected_detail(mysql_url)
    assert finding.detail == f"to {mysql_url.username}@127.0.0.1:3306/test"
    assert str(finding).startswith(f"2 PyMySQL connections {finding.detail} created at {HERE}:")
    assert monitor.settle(baseline + 2) == baseline + 2  # report only: both still open


def test_cleanup_all_closes_the_connection_after_every_invocation(
    guarded, mysql_kwargs, monitor: Monitor, kept: Kept
) -> None:
    baseline = monitor.threads()
    guard = guarded(leaky_pymysql(mysql_kwargs, kept), db_cleanup="all")
    for invocation in range(1, 51):
        assert guard(1) == [1], invocation  # the handler keeps working
        assert monitor.settle(baseline) == baseline, invocation
    assert not any(conn.open for conn in kept)
    first = guard.findings[0]  # closed by safehandler, still left open by the handler
    assert (first.noun, first.count, first.invocation) == ("PyMySQL connection", 2, 2)
    assert first.detail.endswith("(safehandler cleaned up 1 of them)")


def test_cleanup_leaks_closes_a_sustained_leak_and_keeps_the_server_bounded(
    guarded, mysql_kwargs, monitor: Monitor, kept: Kept
) -> None:
    """The field report's leak under the default cleanup: reported at the second invocation;
    its connections closed once the site grew in more invocations than a bounded cache shows
    and none of them was ever used again; every invocation answered."""
    baseline = monitor.threads()
    guard = guarded(leaky_pymysql(mysql_kwargs, kept), db_cleanup="leaks")
    bound = baseline + SUSTAINED_GROWTH + 1
    for invocation in range(1, 61):
        assert guard(1) == [1], invocation  # the handler keeps working
        # bounded: no more than that is ever left open
        assert monitor.at_most(bound) <= bound, invocation
    assert not kept[0].open  # closed by safehandler: never used again
    [finding, *_] = guard.findings
    assert (finding.noun, finding.count, finding.invocation) == ("PyMySQL connection", 2, 2)


def test_open_transaction_on_a_pymysql_connection_is_rolled_back_by_cleanup(
    guarded, mysql_kwargs, table: str, kept: Kept, other, monitor: Monitor
) -> None:
    def handler(event, context):
        conn = pymysql.connect(**mysql_kwargs)
        kept.append(conn)
        with conn.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
        return "updated"

    guard = guarded(handler, db_cleanup="all")
    assert guard(3) == ["updated"] * 3  # each would wait for the last one's lock otherwise
    [(v,)] = monitor.query(f"SELECT v FROM {table} WHERE id = 1")
    assert v == 0  # rolled back, not committed


# -- SQLAlchemy on MySQL ------------------------------------------------------------------


class TestSqlAlchemyOnMySQL(SqlAlchemyCases):
    @pytest.fixture
    def url(self, mysql_url: URL) -> str:
        return mysql_url.render_as_string(hide_password=False)

    @pytest.fixture
    def engine(self, url: str, kept: Kept) -> Iterator[Engine]:
        engine = create_engine(url)
        yield engine
        kept.close_all()  # return what was leaked to this pool before it goes
        engine.dispose()

    @pytest.fixture
    def gauge(self, monitor: Monitor) -> Monitor:
        return monitor

    @pytest.fixture
    def try_update(self, table: str, other):
        def update() -> tuple[float, BaseException | None]:
            def run() -> None:
                with other.cursor() as cursor:
                    cursor.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")

            return timed(run)

        return update

    @pytest.fixture
    def read_v(self, table: str, monitor: Monitor):
        def read() -> int:
            [(v,)] = monitor.query(f"SELECT v FROM {table} WHERE id = 1")
            return int(v)

        return read


def test_lock_wait_timeout_is_the_servers_error_1205(
    guarded, kept: Kept, mysql_url: URL, table: str, other
) -> None:
    engine = create_engine(mysql_url.render_as_string(hide_password=False))
    try:

        def handler(event, context):
            session = Session(engine)
            kept.append(session)
            session.execute(text(f"UPDATE {table} SET v = 5 WHERE id = 1"))

        guarded(handler, db_cleanup="off")(1)
        with pytest.raises(pymysql.err.OperationalError) as info, other.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
        assert info.value.args[0] == 1205  # ER_LOCK_WAIT_TIMEOUT
    finally:
        kept.close_all()
        engine.dispose()


# -- passwords never appear ---------------------------------------------------------------


def _password_leaks(url: URL, engine: Engine, kept: Kept) -> dict[str, Any]:
    kwargs = connect_kwargs(url)
    rendered = url.render_as_string(hide_password=False)
    assert PASSWORD in rendered

    def pymysql_handler(event, context):
        kept.append(pymysql.connect(**kwargs))

    def engine_handler(event, context):
        created = create_engine(rendered)
        kept.append(created)
        with created.connect() as conn:
            conn.execute(text("SELECT 1"))

    def connection_handler(event, context):
        conn = engine.connect()
        kept.append(conn)
        conn.execute(text("SELECT 1"))

    def session_handler(event, context):
        session = Session(engine)
        kept.append(session)
        session.execute(text("SELECT 1"))

    return {
        "PyMySQL connection": pymysql_handler,
        "SQLAlchemy engine": engine_handler,
        "SQLAlchemy connection": connection_handler,
        "SQLAlchemy Session": session_handler,
    }


@pytest.fixture
def password_engine(password_url: URL, kept: Kept) -> Iterator[Engine]:
    # room for every leaked checkout of the test (the default pool stops at 15)
    engine = create_engine(password_url.render_as_string(hide_password=False), pool_size=40)
    yield engine
    kept.close_all()
    engine.dispose()


@pytest.mark.parametrize("cleanup", ["off", "all"])
def test_passwords_appear_in_no_finding_log_or_report(
    cleanup: str,
    password_url: URL,
    password_engine: Engine,
    kept: Kept,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="safehandler")
    handlers = _password_leaks(password_url, password_engine, kept)
    outputs: list[str] = []
    nouns = set()
    for noun, handler in handlers.items():
        guarded_handler = safehandler.guard(handler, mode="report", db_cleanup=cleanup, leak_span=1)
        engine = engine_of(guarded_handler)
        assert engine is not None
        for _ in range(3):
            guarded_handler({}, FakeLambdaContext())
        for finding in engine.findings:
            nouns.add(finding.noun)
            outputs += [str(finding), repr(finding), json.dumps(finding.to_dict())]
        assert any(f.noun == noun for f in engine.findings), noun
        report = soak(
            handler,
            invocations=3,
            policy=Policy(mode="report", db_cleanup=cleanup),
            name=noun,
        )
        assert not report.clean
        outputs += [str(report), json.dumps(report.to_dict())]
        strict = safehandler.guard(handler, mode="strict", db_cleanup=cleanup)
        strict({}, FakeLambdaContext())
        with pytest.raises(safehandler.LeakedConnectionError) as info:
            strict({}, FakeLambdaContext())
        outputs.append(str(info.value))
    assert nouns == set(handlers)
    records = [r for r in caplog.records if r.name.startswith("safehandler")]
    assert records, "report mode logs each finding"
    outputs += [record.getMessage() for record in records]
    outputs.append(caplog.text)
    everything = "\n".join(outputs)
    assert f"{PASSWORD_USER}@" in everything  # the user is named ...
    assert PASSWORD not in everything  # ... the password never


# -- the examples, through the command line ----------------------------------------------


def run_soak(target: str, tmp_path: Path, **env: str) -> tuple[int, str, dict | None]:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "soak", target, "-n", "50", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), **env},
    )
    report = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, report


def examples_line(text: str) -> int:
    lines = (ROOT / "examples" / "db.py").read_text().splitlines()
    [line] = [n for n, source in enumerate(lines, 1) if text in source]
    return line


def test_leaky_db_example_on_mysql_is_found_at_its_connect_call(
    mysql_url: URL, monitor: Monitor, tmp_path: Path
) -> None:
    baseline = monitor.threads()
    url = mysql_url.render_as_string(hide_password=False)
    code, output, report = run_soak("examples/leaky_db.py:handler", tmp_path, DATABASE_URL=url)
    assert code == 1, output
    assert report is not None
    assert (report["verdict"], report["invocations"], report["errors"]) == ("leak", 50, 0)
    [finding] = [f for f in report["findings"] if f["kind"] not in ("memory", "global")]
    assert finding["kind"] == "db_connection"
    assert finding["site"] == f"examples/db.py:{examples_line('pymysql.connect(')}"
    assert (finding["count"], finding["first_invocation"], finding["invocation"]) == (50, 1, 2)
    assert "PyMySQL connection" in finding["detail"]
    assert monitor.settle(baseline) == baseline  # the soak's process is gone, and its leaks


def test_fixed_db_example_on_mysql_is_clean(mysql_url: URL, tmp_path: Path) -> None:
    url = mysql_url.render_as_string(hide_password=False)
    code, output, report = run_soak("examples/fixed_db.py:handler", tmp_path, DATABASE_URL=url)
    assert code == 0, output
    assert report is not None
    assert report == report | {"verdict": "clean", "invocations": 50, "errors": 0, "findings": []}


# -- no server: skip locally, fail under CI ------------------------------------------------


@pytest.fixture
def dead_url() -> str:
    """A URL nothing answers at: a port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"mysql+pymysql://root:@127.0.0.1:{port}/test"


@pytest.mark.parametrize(("ci", "outcome"), [("true", "error"), ("", "skipped")])
def test_without_a_server_tests_skip_locally_and_fail_under_ci(
    ci: str, outcome: str, dead_url: str
) -> None:
    # (not under this run's coverage either: its floor is for the whole suite, not one test)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "PYTEST_ADDOPTS") and not k.startswith("COVERAGE_")
    }
    env |= {"SAFEHANDLER_TEST_MYSQL_URL": dead_url, "CI": ci}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_db_scope.py",
            "-q",
            "-rsE",
            "-k",
            "pymysql_source",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    tail = proc.stdout.strip().splitlines()[-1]
    if outcome == "error":
        assert proc.returncode == 1, proc.stdout
        assert "skipped" not in tail
        assert "error" in tail
        assert "CI=true, so a missing server is an error" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout
        assert "skipped" in tail
        assert "passed" not in tail
        assert "no MariaDB/MySQL server answers at" in proc.stdout

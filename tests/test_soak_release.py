"""An in-process soak leaves its caller as it found it: what the handler leaked is released
after the soak, process-wide state put back, and the report says what was done."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

from safehandler.testing import soak

LEAKY = """
import os, sqlite3

DATABASE = os.path.join(os.path.dirname(__file__), "orders.db")
CONNECTIONS = []


def leaky_files(event, context):
    CONNECTIONS.append(open(__file__))
    return {"statusCode": 200}


def leaky_sqlite(event, context):
    conn = sqlite3.connect(DATABASE)
    CONNECTIONS.append(conn)
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)")
    return {"statusCode": 200}
"""

UNDER_LAMBDAS_LIMIT = """
import resource

_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # the common `ulimit -n 1024`
"""

TESTS = """
import handlers


def test_soak_the_leak(soak):
    report = soak(handlers.{handler}, invocations=1500, check=False, release={release})
    assert report.verdict == "leak"
    assert report.fd_exhausted_at is not None  # it really ran out, in this process
    print("RELEASED", report.released)


def test_the_next_test_opens_files(tmp_path):
    files = [open(tmp_path / f"f{{n}}", "w") for n in range(200)]
    for handle in files:
        handle.close()
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(handlers=LEAKY)
    pytester.makeconftest(UNDER_LAMBDAS_LIMIT)
    return pytester


@pytest.mark.parametrize(
    ("handler", "noun"), [("leaky_sqlite", "sqlite3 connections"), ("leaky_files", "files")]
)
def test_after_an_in_process_soak_the_next_test_runs_under_ulimit_1024(
    project: pytest.Pytester, handler: str, noun: str
) -> None:
    project.makepyfile(test_it=TESTS.format(release=True, handler=handler))
    result = project.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    [line] = [line for line in result.outlines if "RELEASED" in line]
    closed = int(line.split("'closed ")[1].split(f" {noun}")[0].replace(",", ""))
    assert 1000 < closed < 1024  # every one it left open, up to the limit (the table was full)


def test_without_release_the_next_test_runs_out_of_fds(project: pytest.Pytester) -> None:
    project.makepyfile(test_it=TESTS.format(release=False, handler="leaky_sqlite"))
    result = project.runpytest_subprocess("-s", "-p", "no:randomly")
    assert result.ret != 0
    assert "Too many open files" in result.stdout.str() + result.stderr.str()


def test_children_threads_environment_and_paths_are_put_back(tmp_path: Path) -> None:
    children: list[subprocess.Popen[bytes]] = []
    pools: list[ThreadPoolExecutor] = []

    def handler(event: Any, context: Any) -> None:
        children.append(subprocess.Popen(["sleep", "60"]))
        pool = ThreadPoolExecutor(max_workers=1)
        pool.submit(lambda: None).result()
        pools.append(pool)
        os.environ["SOAKED_ORDER"] = context.aws_request_id
        sys.path.append(str(tmp_path))

    threads_before = threading.active_count()
    report = soak(handler, invocations=5)
    assert report.verdict == "leak"
    assert report.released is not None
    assert "terminated 5 child processes" in report.released
    assert "shut down 5 thread pools" in report.released
    assert "5 threads ended" in report.released
    assert "restored os.environ (1 variable)" in report.released
    assert "restored sys.path" in report.released
    assert "released after the soak: " in str(report)
    assert all(child.poll() is not None for child in children)
    assert not [c for c in psutil.Process().children() if c.pid in {p.pid for p in children}]
    assert threading.active_count() == threads_before
    assert "SOAKED_ORDER" not in os.environ
    assert str(tmp_path) not in sys.path


def test_a_clean_soak_keeps_the_connection_it_reuses(tmp_path: Path) -> None:
    kept: dict[str, sqlite3.Connection] = {}

    def handler(event: Any, context: Any) -> int:
        if "conn" not in kept:
            kept["conn"] = sqlite3.connect(tmp_path / "orders.db")
        (one,) = kept["conn"].execute("select 1").fetchone()
        return int(one)

    report = soak(handler, invocations=50)
    assert report.clean, str(report)
    assert report.released == []
    assert kept["conn"].execute("select 2").fetchone() == (2,)  # still open, still works
    kept["conn"].close()


def test_release_can_be_turned_off() -> None:
    kept: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        kept.append(open(os.devnull))

    report = soak(handler, invocations=3, release=False)
    assert report.verdict == "leak"
    assert report.released is None
    assert not any(handle.closed for handle in kept)
    for handle in kept:
        handle.close()


def test_a_module_level_pool_keeps_the_connection_it_reuses(tmp_path: Path) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'orders.db'}", pool_size=1)
    kept: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        kept.append(open(os.devnull))

    report = soak(handler, invocations=5)
    assert report.verdict == "leak"
    assert report.released is not None
    assert report.released[0] == "closed 5 files"
    assert not [line for line in report.released if "sqlite3" in line or "engine" in line]
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("select 2")).scalar() == 2
    engine.dispose()


def test_an_object_whose_class_runs_code_on_every_attribute_does_not_stop_a_soak() -> None:
    """The soak finds what the handler left open by type, never by asking an object its
    ``__class__`` (which ``isinstance`` may do, and a metaclass may answer with an error)."""

    class Loud(type):
        def __getattribute__(cls, name: str) -> Any:
            raise RuntimeError("metaclass code ran")

    class Quiet(metaclass=Loud):
        pass

    report = soak(lambda event, context: None, invocations=5)
    assert report.clean, str(report)
    assert Quiet is not None

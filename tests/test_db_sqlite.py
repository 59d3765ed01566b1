"""The SQLAlchemy cases on SQLite (a file in tmp_path), and the DB examples on their default.

SQLite has no server to ask: what the database side holds is the number of this process's
file descriptors open on the database file. Its locks are real, though: a write transaction
left open makes another connection's write fail with "database is locked".
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from safehandler.db import scope

pytest.register_assert_rewrite("tests.db_fixtures")  # before it is imported

from .db_fixtures import Kept, SqlAlchemyCases, timed  # noqa: E402

pytest_plugins = ["tests.db_fixtures"]

ROOT = Path(__file__).resolve().parent.parent


class FileGauge:
    """fds of this process open on one file."""

    def __init__(self, path: Path) -> None:
        self.path = os.path.realpath(path)

    def read(self) -> int:
        count = 0
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") == self.path:
                    count += 1
            except OSError:  # closed meanwhile
                continue
        return count

    def settle(self, expected: int) -> int:
        return self.read()  # closing a file is synchronous


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        conn.execute("INSERT INTO items VALUES (1, 0)")
    conn.close()
    return path


class TestSqlAlchemyOnSQLite(SqlAlchemyCases):
    @pytest.fixture
    def url(self, db_path: Path) -> str:
        return f"sqlite:///{db_path}"

    @pytest.fixture
    def engine(self, url: str, kept: Kept) -> Iterator[Engine]:
        engine = create_engine(url)
        yield engine
        kept.close_all()
        engine.dispose()

    @pytest.fixture
    def gauge(self, db_path: Path) -> FileGauge:
        return FileGauge(db_path)

    @pytest.fixture
    def table(self, db_path: Path, kept: Kept) -> Iterator[str]:
        yield "items"
        kept.close_all()

    @pytest.fixture
    def other(self, db_path: Path) -> Iterator[sqlite3.Connection]:
        """Another connection, in autocommit mode, which gives up on a lock after 0.5 s."""
        conn = sqlite3.connect(db_path, timeout=0.5, isolation_level=None)
        yield conn
        conn.close()

    @pytest.fixture
    def try_update(self, other: sqlite3.Connection):
        return lambda: timed(lambda: other.execute("UPDATE items SET v = v + 1 WHERE id = 1"))

    @pytest.fixture
    def read_v(self, other: sqlite3.Connection):
        return lambda: other.execute("SELECT v FROM items WHERE id = 1").fetchone()[0]


# -- scope() with a DB-API connect function -------------------------------------------------


def test_scope_with_sqlite3_connect_commits_rolls_back_and_closes(db_path: Path) -> None:
    source = functools.partial(sqlite3.connect, db_path)
    with scope(source) as db:
        db.execute("INSERT INTO items VALUES (2, 7)")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        db.execute("SELECT 1")
    error = LookupError("the handler's own error")

    def fail() -> None:
        with scope(source) as db:
            opened.append(db)
            db.execute("INSERT INTO items VALUES (3, 7)")
            raise error

    opened: list[sqlite3.Connection] = []
    with pytest.raises(LookupError) as raised:
        fail()
    assert raised.value is error
    [db] = opened
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        db.execute("SELECT 1")
    assert FileGauge(db_path).read() == 0
    reader = sqlite3.connect(db_path)
    try:
        assert reader.execute("SELECT id FROM items ORDER BY id").fetchall() == [(1,), (2,)]
    finally:
        reader.close()


# -- the examples on their default database, through the command line ----------------------


def run_soak(target: str, tmp_path: Path) -> tuple[int, str, dict | None]:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "soak", target, "-n", "50", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},  # no DATABASE_URL: SQLite
    )
    report = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, report


def test_leaky_db_example_on_sqlite_is_found_at_its_connect_call(tmp_path: Path) -> None:
    lines = (ROOT / "examples" / "db.py").read_text().splitlines()
    [line] = [n for n, text in enumerate(lines, 1) if "sqlite3.connect(" in text]
    code, output, report = run_soak("examples/leaky_db.py:handler", tmp_path)
    assert code == 1, output
    assert report is not None
    assert (report["verdict"], report["invocations"], report["errors"]) == ("leak", 50, 0)
    [finding] = [f for f in report["findings"] if f["kind"] not in ("memory", "global")]
    assert finding["kind"] == "fd"
    assert finding["site"] == f"examples/db.py:{line}"
    assert (finding["count"], finding["first_invocation"], finding["invocation"]) == (50, 1, 2)
    assert "safehandler-orders.db" in finding["detail"]


def test_fixed_db_example_on_sqlite_is_clean(tmp_path: Path) -> None:
    code, output, report = run_soak("examples/fixed_db.py:handler", tmp_path)
    assert code == 0, output
    assert report is not None
    assert report == report | {"verdict": "clean", "invocations": 50, "errors": 0, "findings": []}


LATE_IMPORT_APP = """\
import json
import safehandler

KEPT = []


def handler(event, context):
    KEPT.append(ENGINE.connect())  # kept


guarded = safehandler.guard(handler, leak_span=1)  # the first guard, before SQLAlchemy
import sqlalchemy  # noqa: E402

ENGINE = sqlalchemy.create_engine("sqlite:///{db}", poolclass=sqlalchemy.pool.NullPool)
engine = guarded.__safehandler__
for _ in range(3):
    guarded({{}}, None)
print(json.dumps([[f.kind, f.count, f.site.lineno if f.site else None] for f in engine.findings]))
"""


def test_sqlalchemy_imported_after_the_first_guard_is_tracked(tmp_path: Path) -> None:
    # The hook used to run while sqlalchemy.event was half loaded and left SQLAlchemy
    # connections untracked: a fresh interpreter, so that sqlalchemy is not loaded yet.
    app = tmp_path / "app.py"
    app.write_text(LATE_IMPORT_APP.format(db=tmp_path / "late.db"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(app)], capture_output=True, text=True, timeout=60, check=True
    )
    findings = json.loads(done.stdout.splitlines()[-1])
    line = next(n for n, text in enumerate(app.read_text().splitlines(), 1) if "# kept" in text)
    assert ["db_connection", 2, line] in findings, (findings, done.stderr)

"""A real PostgreSQL server for the psycopg tests, as a login role of each test's own.

The server is ``$SAFEHANDLER_TEST_PG_DSN`` (default ``host=127.0.0.1 port=5432 user=postgres
dbname=test``). What a test counts on the server (``pg_stat_activity``) is its own role's
connections only: other clients may share the server. No global setting is changed. When no
server answers, the tests are skipped, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


@dataclass
class PgMonitor:
    """An admin connection that counts the test role's server-side connections."""

    conn: psycopg.Connection[tuple[object, ...]]
    user: str

    def read(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (self.user,)
        ).fetchone()
        assert row is not None
        return int(row[0])  # type: ignore[call-overload]

    def settle(self, expected: int, timeout: float = 3.0) -> int:
        """The role's connections once they are ``expected`` (a backend ends a moment after
        its client hung up), or whatever they are when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.read()
            if now == expected or time.monotonic() > deadline:
                return now
            time.sleep(0.01)


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    dsn = os.environ.get("SAFEHANDLER_TEST_PG_DSN", DEFAULT_DSN)
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"no PostgreSQL server answers at {dsn!r} ({exc}); start one or set it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, so a missing server is an error: {reason}", pytrace=False)
        pytest.skip(reason)
    return dsn


@pytest.fixture
def pg_monitor(pg_admin_dsn: str) -> Iterator[PgMonitor]:
    """A login role of this test's own; its connections are ended and it is dropped after."""
    admin = psycopg.connect(pg_admin_dsn, autocommit=True)
    user = f"sh_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE ROLE "{user}" LOGIN')
    try:
        yield PgMonitor(admin, user)
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (user,)
        )
        for _ in range(100):  # DROP ROLE fails while a backend of it still runs
            with contextlib.suppress(psycopg.errors.ObjectInUse):
                admin.execute(f'DROP ROLE IF EXISTS "{user}"')
                break
            time.sleep(0.05)
        admin.close()


@pytest.fixture
def pg_dsn(pg_admin_dsn: str, pg_monitor: PgMonitor) -> str:
    """The server as the test's own role."""
    params = psycopg.conninfo.conninfo_to_dict(pg_admin_dsn)
    params["user"] = pg_monitor.user
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]

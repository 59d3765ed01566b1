"""Server-side connection counts for the field report's handler, with and without the guard.

A handler opens a PyMySQL connection per invocation and keeps it in a module-level list. After
each invocation this prints ``Threads_connected`` minus its baseline, as MariaDB counts it.

    .venv/bin/python benchmarks/db_connections.py [-n 300] [--json OUT]
        [--url mysql+pymysql://root:@127.0.0.1:3306/test]
"""

from __future__ import annotations

import argparse
import os
import time
from urllib.parse import unquote, urlsplit

import _common
import pymysql

import safehandler
from safehandler.testing import FakeLambdaContext

DEFAULT_URL = os.environ.get(
    "SAFEHANDLER_TEST_MYSQL_URL", "mysql+pymysql://root:@127.0.0.1:3306/test"
)


def connect_args(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.removeprefix("/") or None,
    }


def server_threads(monitor: pymysql.Connection) -> int:
    with monitor.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'Threads_connected'")
        return int(cursor.fetchone()[1])


def settled(monitor: pymysql.Connection, base: int) -> int:
    """The server ends a closed connection's thread asynchronously: give it a moment."""
    for _ in range(50):
        over = server_threads(monitor) - base
        if over <= 0:
            return over
        time.sleep(0.002)
    return over


def run(
    mode: str, invocations: int, args: dict[str, object], monitor: pymysql.Connection
) -> dict[str, object]:
    kept: list[pymysql.Connection] = []

    def handler(event: object, context: object) -> int:
        conn = pymysql.connect(**args)
        kept.append(conn)
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            return int(cursor.fetchone()[0])

    target = handler if mode == "none" else safehandler.guard(handler, db_cleanup=mode)
    base = server_threads(monitor)
    over, served = [], 0
    for _ in range(invocations):
        served += target({}, FakeLambdaContext()) == 1
        over.append(settled(monitor, base))
    for conn in kept:
        if conn.open:
            conn.close()
    return {"db_cleanup": mode, "served": served, "over_baseline": over}


def row(result: dict[str, object], invocations: int) -> str:
    over: list[int] = result["over_baseline"]  # type: ignore[assignment]
    first = ", ".join(str(n) for n in over[:3])
    mode, served = result["db_cleanup"], result["served"]
    return f"| {mode} | {served}/{invocations} | {first} | {max(over)} | {over[-1]} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--invocations", type=int, default=300)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this file")
    options = parser.parse_args()
    info = _common.machine("pymysql")
    args = connect_args(options.url)
    monitor = pymysql.connect(**args, autocommit=True)
    with monitor.cursor() as cursor:
        cursor.execute("SELECT @@max_connections")
        (old_limit,) = cursor.fetchone()
        cursor.execute(f"SET GLOBAL max_connections = {options.invocations + 200}")
    try:
        print(_common.machine_line(info), end="\n\n")
        print(f"Threads_connected over baseline, {options.invocations} invocations")
        print("| db_cleanup | served | after invocation 1, 2, 3 | max | after the last |")
        print("| --- | --- | --- | --- | --- |")
        results = []
        for mode in ("none", "off", "leaks", "all"):
            results.append(run(mode, options.invocations, args, monitor))
            print(row(results[-1], options.invocations))
        _common.write_json(options.json, {"machine": info, "results": results})
    finally:
        with monitor.cursor() as cursor:
            cursor.execute(f"SET GLOBAL max_connections = {int(old_limit)}")
        monitor.close()


if __name__ == "__main__":
    main()

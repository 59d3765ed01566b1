"""The ``fix:`` line fits what leaked: close or ``with`` for resources, a module-level object
for clients and executors, a bound or ``allow_global`` for caches, restore or leave alone for
the standard library, join for threads."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

import safehandler
from safehandler._records import Finding, Site
from safehandler.report import advice
from safehandler.testing import soak

from ._lines import line_of

USE = ("app.py", 14, "handler")


def finding(
    kind: Any, noun: str, *, via: str | None = None, detail: str = "", **site: Any
) -> Finding:
    where = Site("app.py", 12, "handler", via, **site)
    return Finding(kind, 2, where, 1, detail, noun=noun, invocation=2)


@pytest.mark.parametrize(
    ("leak", "fix"),
    [
        (finding("fd", "file", detail="open on /tmp/x.log"), "`with open(...) as f:`"),
        (
            finding("fd", "anonymous temporary file", via="tempfile.TemporaryFile"),
            "`with tempfile.TemporaryFile() as f:`",
        ),
        (finding("fd", "pipe", via="subprocess.Popen.__init__"), "`with subprocess.Popen(...)"),
        (finding("fd", "pipe"), "close both ends (os.close)"),
        (
            finding(
                "fd", "fd", via="asyncio event loop", detail="of asyncio event loops never closed"
            ),
            "asyncio.run()",
        ),
        (
            finding("socket", "socket", via="httpx.Client", first_use=USE),
            "create the httpx.Client once at module level and reuse it",
        ),
        (
            finding("socket", "socket", via="a boto3 client", first_use=USE),
            "create the boto3 client once at module level",
        ),
        (finding("socket", "socket", detail="to 127.0.0.1:5432"), "open it once at module level"),
        (
            finding(
                "thread",
                "idle thread",
                via="concurrent.futures.ThreadPoolExecutor",
                first_use=USE,
            ),
            "create the ThreadPoolExecutor once at module level",
        ),
        (finding("thread", "thread"), "join the thread before returning"),
        (finding("process", "child process"), "subprocess.run"),
        (finding("db_connection", "SQLAlchemy Session"), "finally: db.close()"),
        (finding("db_connection", "SQLAlchemy engine"), "create the engine once at module level"),
        (finding("db_connection", "PyMySQL connection"), "connect once at module level"),
        (finding("global", "module global"), "allow_global"),
        (finding("global", "growing cache"), "lru_cache(maxsize=...)"),
        (finding("global", "stdlib attribute"), 'isolation="restore"'),
        (finding("global", "environment variable"), "instead of setting os.environ per call"),
        (finding("global", "logging handler"), "add logging handlers once at import"),
        (finding("global", "sys.path entry"), "set sys.path once at import"),
        (finding("memory", "byte per invocation"), "the allocation lines above"),
    ],
    ids=lambda value: value.noun if isinstance(value, Finding) else "",
)
def test_the_fix_fits_the_kind(leak: Finding, fix: str) -> None:
    assert fix in advice(leak)


def test_a_soak_report_gives_each_finding_its_fix() -> None:
    stop = threading.Event()
    kept: list[Any] = []

    def poll() -> None:
        while not stop.wait(0.05):  # wakes by itself: background work
            pass

    def handler(event: Any, context: Any) -> None:
        kept.append(open(__file__, "rb"))
        threading.Thread(target=poll, daemon=True).start()

    try:
        report = soak(handler, invocations=5)
    finally:
        stop.set()
        for file in kept:
            file.close()
    text = str(report)
    assert "fix: close it before returning (`with` or try/finally): `with open(...) as f:`" in text
    assert "fix: join the thread before returning (thread.join())" in text
    assert text.count("fix: ") == len(report.findings) == 2


def test_the_log_line_carries_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    kept: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        kept.append(open(__file__, "rb"))  # leak-line

    guarded = safehandler.guard(handler, leak_span=1)  # reported at the second growth
    try:
        with caplog.at_level(logging.WARNING, logger="safehandler"):
            for _ in range(3):
                guarded({}, None)
    finally:
        for file in kept:
            file.close()
    [line] = [
        json.loads(r.getMessage()) for r in caplog.records if "safehandler.leak" in r.getMessage()
    ]
    assert line["safehandler"]["fix"].endswith("`with open(...) as f:`")
    assert line["safehandler"]["site"].endswith(f":{line_of('leak-line')}")

"""The soak's verdicts: clean, leak, failing; where failures began; fd exhaustion in any dress."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from safehandler.testing import soak
from safehandler.testing._limits import fd_limited
from safehandler.testing._outcomes import Failure, Failures, failure_of, fd_exhaustion
from safehandler.testing.html_report import render_html

from ._cli import env, run

STARTS_FAILING = """
import itertools

CALLS = itertools.count(1)


def handler(event, context):
    if next(CALLS) >= 40:
        raise RuntimeError("orders table locked, see mysql://app:hunter2@db:3306/orders")
    return {"statusCode": 200}
"""


def test_a_handler_that_starts_failing_at_invocation_40_is_failing(tmp_path: Path) -> None:
    (tmp_path / "starts_failing.py").write_text(STARTS_FAILING)
    code, stdout, stderr, report = run("starts_failing.py:handler", "-n", "100", tmp_path=tmp_path)
    assert code == 1, stderr
    assert report is not None
    assert (report["verdict"], report["findings"], report["failed"]) == ("failing", [], 61)
    first = report["failures"]["first"]
    assert (first["invocation"], first["error"]) == (40, "RuntimeError")
    # the message, redacted: the user name and host stay, the password does not
    assert first["message"] == "orders table locked, see mysql://app:***@db:3306/orders"
    assert report["failures"]["runs"] == [[40, 100]]
    evolution = "failures began at invocation 40, every invocation since"
    assert report["failures"]["evolution"] == evolution
    assert "failing: first at invocation 40 (RuntimeError: orders table locked" in stdout
    assert evolution in stdout
    assert "verdict: FAILING, 61 of 100 invocations failed" in stdout
    assert "hunter2" not in stdout + json.dumps(report)


def test_the_same_handler_before_it_fails_is_clean(tmp_path: Path) -> None:
    (tmp_path / "starts_failing.py").write_text(STARTS_FAILING)
    code, stdout, stderr, report = run("starts_failing.py:handler", "-n", "39", tmp_path=tmp_path)
    assert code == 0, stdout + stderr
    assert report is not None
    assert (report["verdict"], report["failed"], report["failures"]["first"]) == ("clean", 0, None)


def responding(responses: list[Any]) -> Any:
    calls = iter(responses)

    def handler(event: Any, context: Any) -> Any:
        return next(calls)

    return handler


def test_error_responses_fail_an_invocation_and_other_responses_do_not() -> None:
    ok = {"statusCode": 200, "body": "{}"}
    responses = [ok, {"statusCode": 404}, {"statusCode": 502, "body": "upstream gone"}]
    responses += [{"batchItemFailures": []}, {"batchItemFailures": [{"itemIdentifier": "m-1"}]}]
    responses += [{"statusCode": "503"}, ok, None, "text"]
    report = soak(responding(responses), invocations=len(responses))
    assert report.verdict == "failing"
    assert report.errors == 0  # nothing raised: every failure was a response
    assert report.error_types == {"HTTP 502": 1, "batchItemFailures": 1, "HTTP 503": 1}
    assert report.failures.runs == [[3, 3], [5, 6]]
    assert report.failures.first == Failure(3, "HTTP 502", "upstream gone")
    head = str(report).splitlines()[0]
    assert head.endswith(
        "0 raised, 3 returned an error (1 HTTP 502, 1 batchItemFailures, 1 HTTP 503)"
    )
    assert report.failures.evolution(9) == (
        "3 of 9 invocations failed in 2 runs: the first at 3, the last at 6"
    )
    page = render_html(report)
    assert '<span class="verdict leak">FAILING</span> 3 of 9 invocations failed' in page
    assert "from invocation 3 (HTTP 502: upstream gone)" in page
    assert "3 invocations failed (raised or returned an error), first at 3" in page  # ticked


def test_a_mangum_app_whose_route_raises_returns_500s_that_are_failing() -> None:
    from fastapi import FastAPI
    from mangum import Mangum

    app = FastAPI()

    @app.get("/orders")
    async def orders() -> dict[str, str]:  # async: no AnyIO worker thread to judge
        raise RuntimeError("pool timed out")

    event = {
        "version": "2.0",
        "routeKey": "GET /orders",
        "rawPath": "/orders",
        "rawQueryString": "",
        "headers": {"host": "api.example.com"},
        "isBase64Encoded": False,
        "requestContext": {
            "http": {"method": "GET", "path": "/orders", "sourceIp": "192.0.2.1"},
            "stage": "$default",
        },
    }
    # (the first request builds the app's middleware: on a busy machine, past Lambda's 3 s)
    report = soak(Mangum(app, lifespan="off"), events=event, invocations=12, timeout=60)
    assert report.errors == 0, str(report)  # Mangum turned every exception into a response
    assert (report.verdict, report.failed, report.error_types) == ("failing", 12, {"HTTP 500": 12})
    assert report.failures.first == Failure(1, "HTTP 500", "Internal Server Error")


def test_evolution_of_failures_that_stopped() -> None:
    failures = Failures()
    for n in (5, 6, 7):
        failures.record(Failure(n, "KeyError", ""))
    assert failures.evolution(100) == "invocations 5 to 7 failed, none since"
    once = Failures()
    once.record(Failure(9, "KeyError", ""))
    assert once.evolution(100) == "only invocation 9 failed"
    assert Failures.from_dict(failures.to_dict(100)) == failures


def test_an_errno_anywhere_in_the_chain_is_fd_exhaustion() -> None:
    def wrapped() -> None:
        try:
            raise OSError(errno.EMFILE, "Too many open files")
        except OSError:
            raise RuntimeError("could not reach the cache") from None  # context kept

    with pytest.raises(RuntimeError) as caught:
        wrapped()
    exc = caught.value
    assert exc.__cause__ is None
    assert exc.__suppress_context__
    assert fd_exhaustion(exc) == errno.EMFILE
    failure = failure_of(7, exc=exc)
    assert failure is not None
    assert (failure.error, failure.fd_exhausted) == ("RuntimeError[EMFILE]", True)
    # its clean twin: another errno is named, and is no fd exhaustion
    missing = failure_of(7, exc=FileNotFoundError(errno.ENOENT, "No such file"))
    assert missing is not None
    assert (missing.error, missing.fd_exhausted) == ("FileNotFoundError[ENOENT]", False)
    assert fd_exhaustion(KeyError("unable to open database file")) is None  # fds to spare


UNDER_A_FULL_TABLE = """
import json, os, sqlite3, sys
import pymysql
from safehandler.testing.html_report import render_html
from safehandler.testing._outcomes import failure_of

kept = []
while True:
    try:
        kept.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        break
results = {}
try:
    pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=2)
except Exception as exc:
    results["pymysql"] = failure_of(1, exc=exc).error
try:
    sqlite3.connect(os.path.join(sys.argv[1], "orders.db")).execute("select 1")
except Exception as exc:
    results["sqlite3"] = failure_of(2, exc=exc).error
for fd in kept:
    os.close(fd)
try:
    sqlite3.connect(os.path.join(sys.argv[1], "missing", "orders.db"))
except Exception as exc:
    results["sqlite3 with fds to spare"] = failure_of(3, exc=exc).error
print(json.dumps(results))
"""


def test_driver_errors_under_a_full_fd_table_are_fd_exhaustion(tmp_path: Path) -> None:
    proc = subprocess.run(
        fd_limited([sys.executable, "-c", UNDER_A_FULL_TABLE, str(tmp_path)], 64),
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "pymysql": "OperationalError[EMFILE]",  # PyMySQL's wrapper around socket()'s EMFILE
        "sqlite3": "OperationalError[EMFILE]",  # SQLite says only "unable to open ..."
        "sqlite3 with fds to spare": "OperationalError",
    }


def test_leaky_sqlite_under_a_low_limit_is_found_out_of_fds(tmp_path: Path) -> None:
    code, stdout, stderr, report = run(
        "examples/leaky_sqlite.py:handler",
        "--isolate",
        "--fd-limit",
        "128",
        "-n",
        "200",
        tmp_path=tmp_path,
    )
    assert code == 1, stderr
    assert report is not None
    assert report["verdict"] == "leak"  # the leak explains the failures; both are shown
    exhausted = report["fd_exhausted_at"]
    assert 100 < exhausted < 128
    assert report["failures"]["first"]["invocation"] == exhausted
    assert report["failures"]["first"]["error"] == "OperationalError[EMFILE]"
    assert report["failures"]["evolution"] == (
        f"failures began at invocation {exhausted}, every invocation since"
    )
    assert f"EMFILE at invocation {exhausted}:" in stdout
    # the projection under the limit the soak ran under, and Lambda's beside it
    assert "this soak's RLIMIT_NOFILE of 128 runs out near invocation" in stdout
    assert "Lambda's 1,024 fds run out near invocation" in stdout


def test_a_leaking_file_handler_under_a_low_limit_reports_each_errno(tmp_path: Path) -> None:
    handler = textwrap.dedent(
        """
        KEPT = []

        def handler(event, context):
            KEPT.append(open(__file__))
        """
    )
    (tmp_path / "opens.py").write_text(handler)
    code, _, stderr, report = run(
        "opens.py:handler", "--isolate", "--fd-limit", "64", "-n", "80", tmp_path=tmp_path
    )
    assert code == 1, stderr
    assert report is not None
    assert set(report["error_types"]) == {"OSError[EMFILE]"}
    assert report["failures"]["runs"] == [[report["fd_exhausted_at"], 80]]

"""The local Runtime API, driven by AWS's real runtime client (awslambdaric) as a subprocess.

Protocol details that the client never exercises (unknown request ids, 413, a client that
goes away while waiting, shutdown) are checked with plain http.client requests.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safehandler.testing.runtime_api import (
    LocalRuntimeAPI,
    RuntimeEvent,
    RuntimeProcess,
    run_local,
    run_runtime,
)

pytest.importorskip("awslambdaric")

WAIT = 20.0  # bound on any wait for the runtime; a healthy run takes well under a second
NEXT = "/2018-06-01/runtime/invocation/next"

APP = """
import os, resource, sys

def handler(event, context):
    if event.get("fail"):
        raise ValueError(f"boom {event['n']}")
    if event.get("exit"):
        sys.exit(3)
    return {
        "n": event.get("n"),
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "pid": os.getpid(),
        "custom": getattr(context.client_context, "custom", None),
        "identity": context.identity.cognito_identity_id,
        "wrapped": os.environ.get("WRAPPED"),
        "wrapper_env": os.environ.get("AWS_LAMBDA_EXEC_WRAPPER"),
    }
"""


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.fixture
def make_api() -> Iterator[Callable[..., LocalRuntimeAPI]]:
    """Started LocalRuntimeAPIs, all stopped (with their runtimes) at the end."""
    apis: list[LocalRuntimeAPI] = []

    def make(*args: Any, **kwargs: Any) -> LocalRuntimeAPI:
        api = LocalRuntimeAPI(*args, **kwargs).start()
        apis.append(api)
        return api

    yield make
    for api in apis:
        api.stop()


def wait_exit(proc: RuntimeProcess) -> int:
    return proc.wait(timeout=WAIT)


def test_twenty_events_in_order(task_root: Path, make_api: Callable[..., LocalRuntimeAPI]):
    api = make_api([{"n": n} for n in range(20)], close_when_done=True)
    proc = run_runtime("app.handler", task_root=task_root, api=api)

    assert api.wait_for(20, WAIT), proc.stderr_text()
    results = api.results
    assert [r.status for r in results] == ["success"] * 20
    assert [r.index for r in results] == list(range(20))
    assert [r.body["n"] for r in results] == list(range(20))
    assert [r.body["request_id"] for r in results] == [r.request_id for r in results]
    assert [i.request_id for i in api.invocations] == [r.request_id for r in results]
    assert all(r.error_type is None and r.answered_at >= r.fetched_at for r in results)
    assert results[0].body["function_name"] == api.function_name
    assert results[0].body["memory"] == str(api.memory_size)
    assert results[0].body["arn"] == api.function_arn
    # One process, reused: awslambdaric's native client keeps one connection for its life.
    assert {r.body["pid"] for r in results} == {proc.pid}
    assert {r.pid for r in results} == {proc.pid}
    assert {r.connection for r in results} == {1}
    assert results[0].user_agent is not None
    assert results[0].user_agent.startswith("aws-lambda-python/")
    # Served out, the runtime blocks in next, as a frozen environment does.
    assert api.wait_idle(WAIT)
    assert api.exhausted
    assert api.unanswered == []
    assert proc.poll() is None
    with pytest.raises(RuntimeError, match="closed"):
        api.add_event({"n": 20})


def test_handler_error_then_more_events(task_root: Path, make_api):
    events = [{"n": 0}, {"n": 1, "fail": True}, {"n": 2}, {"n": 3, "fail": True}, {"n": 4}]
    api = make_api(events)
    proc = run_runtime("app.handler", task_root=task_root, api=api)

    assert api.wait_for(5, WAIT), proc.stderr_text()
    results = api.results
    assert [r.status for r in results] == ["success", "error", "success", "error", "success"]
    for r in (results[1], results[3]):
        assert r.error_type is not None
        assert "ValueError" in r.error_type
        assert r.body["errorType"] == "ValueError"
        assert r.body["errorMessage"] == f"boom {r.index}"
        assert r.body["requestId"] == r.request_id
        # awslambdaric's native client sends the X-Ray cause, not the error-type header.
        assert r.header("Lambda-Runtime-Function-Error-Type") is None
        cause = r.header("Lambda-Runtime-Function-XRay-Error-Cause")
        assert cause is not None
        assert json.loads(cause)["exceptions"][0]["type"] == "ValueError"
    assert [r.body["n"] for r in results if r.ok] == [0, 2, 4]
    assert proc.poll() is None  # a handler's exception does not end the runtime
    assert "[ERROR] ValueError: boom 1" in proc.stdout_text()


def test_import_error_is_an_init_error(tmp_path: Path, make_api):
    (tmp_path / "broken.py").write_text(
        "import does_not_exist_xyz\n\ndef handler(e, c):\n    pass\n"
    )
    api = make_api([{"n": 0}])
    proc = run_runtime("broken.handler", task_root=tmp_path, api=api)

    assert wait_exit(proc) == 1
    (error,) = api.init_errors
    assert error.error_type == "Runtime.ImportModuleError"
    assert error.phase == "init"
    assert "does_not_exist_xyz" in error.body["errorMessage"]
    assert error.pid == proc.pid
    assert api.invocations == []
    assert api.results == []
    assert not api.exhausted  # nothing was served


def test_missing_handler_function(task_root: Path, make_api):
    api = make_api([{"n": 0}])
    proc = run_runtime("app.nope", task_root=task_root, api=api)

    assert wait_exit(proc) == 1
    assert [e.error_type for e in api.init_errors] == ["Runtime.HandlerNotFound"]
    # The init error goes through awslambdaric's Python http.client, with the header.
    assert api.init_errors[0].header("lambda-runtime-function-error-type") == (
        "Runtime.HandlerNotFound"
    )
    assert api.init_errors[0].user_agent is None


def test_deadline_and_context_headers(task_root: Path, make_api):
    event = RuntimeEvent(
        {"n": 0},
        request_id="req-0001",
        client_context={"custom": {"tenant": "a"}},
        cognito_identity={"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"},
    )
    api = make_api([event, {"n": 1}], timeout=7)
    proc = run_runtime("app.handler", task_root=task_root, api=api)

    assert api.wait_for(2, WAIT), proc.stderr_text()
    first, second = api.results
    assert first.request_id == first.body["request_id"] == "req-0001"
    assert first.body["custom"] == {"tenant": "a"}
    assert first.body["identity"] == "id-1"
    for r in (first, second):
        assert 5_000 < r.body["remaining_ms"] <= 7_000
    inv = api.invocations[1]
    assert abs(inv.deadline_ms - (time.time() + 7) * 1000) < 7_000


def test_sys_exit_in_handler_loses_the_invocation(task_root: Path, make_api):
    api = make_api([{"n": 0}, {"n": 1, "exit": True}, {"n": 2}])
    proc = run_runtime("app.handler", task_root=task_root, api=api)

    # awslambdaric catches Exception, not SystemExit: the process exits and posts nothing.
    assert wait_exit(proc) == 3
    assert api.wait_until(lambda: api.lost, WAIT)  # once the server saw the socket close
    assert [r.body["n"] for r in api.results] == [0]
    lost = api.invocations[1]
    assert api.unanswered == [lost.request_id]
    assert api.lost == [lost.request_id]
    assert [i.index for i in api.invocations] == [0, 1]  # event 2 was never handed out
    assert not api.exhausted


def test_rlimit_nofile_and_exec_wrapper(task_root: Path, make_api):
    wrapper = task_root / "wrapper.sh"
    wrapper.write_text('#!/bin/sh\nexport WRAPPED="$*"\nexec "$@"\n')
    wrapper.chmod(0o755)
    api = make_api([{"n": 0}])
    proc = run_runtime(
        "app.handler", task_root=task_root, api=api, wrapper=wrapper, rlimit_nofile=64
    )

    assert api.wait_for(1, WAIT), proc.stderr_text()
    body = api.results[0].body
    assert body["nofile"] == [64, 64]
    # Lambda runs "$AWS_LAMBDA_EXEC_WRAPPER <runtime command...>".
    assert body["wrapped"].endswith("-m awslambdaric app.handler")
    assert body["wrapper_env"] == str(wrapper)
    assert body["pid"] == proc.pid  # the launcher and the wrapper exec: one process
    status = proc.stop()
    assert proc.stop() == status == proc.returncode  # stop() twice: the same status


def test_runtime_restarted_between_invocations_loses_nothing(tmp_path: Path, make_api):
    # What safehandler's recycle does: exit between invocations (in wait_next_invocation,
    # after the response was posted), and a supervising wrapper starts a fresh runtime.
    (tmp_path / "recycling.py").write_text(
        textwrap.dedent(
            """
            import os
            from awslambdaric import lambda_runtime_client as lrc

            served = 0
            wait = lrc.LambdaRuntimeClient.wait_next_invocation

            def wait_next_invocation(self):
                if served == 2:
                    os._exit(75)
                return wait(self)

            lrc.LambdaRuntimeClient.wait_next_invocation = wait_next_invocation

            def handler(event, context):
                global served
                served += 1
                return {"n": event["n"], "pid": os.getpid()}
            """
        )
    )
    wrapper = tmp_path / "supervise.sh"
    wrapper.write_text('#!/bin/bash\nwhile true; do "$@"; s=$?; [ $s -eq 75 ] || exit $s; done\n')
    wrapper.chmod(0o755)
    api = make_api([{"n": n} for n in range(5)])
    proc = run_runtime("recycling.handler", task_root=tmp_path, api=api, wrapper=wrapper)

    assert api.wait_for(5, WAIT), proc.stderr_text()
    results = api.results
    assert [r.body["n"] for r in results] == list(range(5))
    assert all(r.ok for r in results)
    assert api.unanswered == []
    pids = [r.body["pid"] for r in results]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert [r.pid for r in results] == pids
    assert [c.seq for c in api.connections] == [1, 2, 3]
    assert proc.poll() is None


def test_run_local(task_root: Path):
    run = run_local("app.handler", [{"n": 0}, {"n": 1, "fail": True}], task_root=task_root)
    assert not run.timed_out
    assert [r.status for r in run.results] == ["success", "error"]
    assert not run.ok
    assert run.returncode is None  # still waiting in next: stopped
    assert "boom 1" in run.stdout

    run = run_local("app.handler", [{"n": 0}, {"n": 1, "exit": True}], task_root=task_root)
    assert run.returncode == 3
    assert len(run.unanswered) == 1
    assert not run.ok


# -- the protocol, without awslambdaric -------------------------------------------------


def request(
    api: LocalRuntimeAPI, method: str, path: str, body: bytes | None = None, timeout=WAIT
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(api.address, timeout=timeout)
    try:
        conn.request(method, path, body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_next_headers(make_api):
    api = make_api(
        [RuntimeEvent({"a": 1}, request_id="r-1", client_context={"custom": {"k": "v"}}), b"raw"],
        timeout=10,
        function_name="fn",
    )
    status, headers, body = request(api, "GET", NEXT)
    assert status == 200
    assert json.loads(body) == {"a": 1}
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "r-1"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:fn")
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    assert json.loads(headers["Lambda-Runtime-Client-Context"]) == {"custom": {"k": "v"}}
    assert "Lambda-Runtime-Cognito-Identity" not in headers
    deadline = int(headers["Lambda-Runtime-Deadline-Ms"])
    assert 0 < deadline - time.time() * 1000 <= 10_000
    status, headers, body = request(api, "GET", NEXT)
    assert (status, headers["Content-Type"], body) == (200, "application/json", b"raw")


def test_answers_and_status_codes(make_api):
    api = make_api([{"n": 0}, {"n": 1}, {"n": 2}], max_response_bytes=100)
    ids = [request(api, "GET", NEXT)[1]["Lambda-Runtime-Aws-Request-Id"] for _ in range(3)]
    base = "/2018-06-01/runtime/invocation"

    assert request(api, "POST", f"{base}/{ids[0]}/response", b'{"ok": true}')[0] == 202
    assert request(api, "POST", f"{base}/{ids[0]}/response", b"{}")[0] == 400  # answered
    assert request(api, "POST", f"{base}/no-such-id/error", b"{}")[0] == 400
    status, _, body = request(api, "POST", f"{base}/{ids[1]}/response", b"x" * 101)
    assert status == 413
    assert json.loads(body)["errorType"] == "RequestEntityTooLarge"
    assert request(api, "GET", f"{base}/{ids[2]}/response")[0] == 405
    assert request(api, "GET", "/2018-06-01/runtime/nothing")[0] == 404
    assert request(api, "GET", "/2018-06-01/runtime/restore/next")[0] == 200
    assert api.unanswered == [ids[2]]

    ok, too_large = api.results
    assert ok.body == {"ok": True}
    assert too_large.status == "error"
    assert too_large.error_type == "Function.ResponseSizeTooLarge"
    assert [r[2] for r in api.requests][-4:] == [413, 405, 404, 200]


def test_queue_events_and_blocking_next(make_api):
    events: queue.Queue[Any] = queue.Queue()
    api = make_api(events)
    got: list[bytes] = []
    fetch = threading.Thread(target=lambda: got.append(request(api, "GET", NEXT)[2]))
    fetch.start()
    assert api.wait_idle(WAIT)
    assert got == []
    api.add_event({"late": True})
    fetch.join(WAIT)
    assert not fetch.is_alive()
    assert [json.loads(b) for b in got] == [{"late": True}]


def test_client_gone_while_waiting_keeps_the_event(make_api):
    api = make_api()
    sock = socket.create_connection(("127.0.0.1", int(api.address.rsplit(":", 1)[1])))
    with sock:
        sock.sendall(f"GET {NEXT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert api.wait_idle(WAIT)
    deadline = time.monotonic() + WAIT
    while api.waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.waiting == 0
    api.add_event({"n": 0})
    status, _, body = request(api, "GET", NEXT)
    assert status == 200
    assert json.loads(body) == {"n": 0}
    assert [i.index for i in api.invocations] == [0]
    assert api.requests[0][2] == 0  # the abandoned next: no response sent


def test_stop_answers_a_blocked_next_and_is_bounded():
    api = LocalRuntimeAPI().start()
    statuses: list[int] = []
    fetch = threading.Thread(target=lambda: statuses.append(request(api, "GET", NEXT)[0]))
    fetch.start()
    try:
        assert api.wait_idle(WAIT)
    finally:
        started = time.monotonic()
        api.stop()
    fetch.join(WAIT)
    assert statuses == [500]
    assert time.monotonic() - started < 5
    api.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = api.address


def test_run_runtime_rejects_bad_options(task_root: Path, make_api):
    api = make_api()
    not_executable = task_root / "app.py"
    with pytest.raises(ValueError, match="executable"):
        run_runtime("app.handler", task_root=task_root, api=api, wrapper=not_executable)
    with pytest.raises(ValueError, match="rlimit_nofile"):
        run_runtime("app.handler", task_root=task_root, api=api, rlimit_nofile=0)
    assert os.environ.get("AWS_LAMBDA_RUNTIME_API") != api.address

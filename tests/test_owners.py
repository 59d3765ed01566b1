"""Objects that open resources lazily: their resources are told where the object was made.

A module-level client or executor (the textbook fix) is clean in a soak and in production; the
same object made per call is a leak named at the line that made it, with its first use beside.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import safehandler
from safehandler.guard import engine_of
from safehandler.testing import soak

from ._lines import line_of

HERE = __file__


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A local HTTP server that keeps connections alive, as real services do."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each answer waits for a delayed ACK

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


POOL = concurrent.futures.ThreadPoolExecutor(max_workers=3, thread_name_prefix="module-pool")


def module_level_executor(event: Any, context: Any) -> int:
    return sum(POOL.map(abs, range(-5, 5)))


EXECUTORS: list[concurrent.futures.ThreadPoolExecutor] = []


def per_call_executor(event: Any, context: Any) -> int:
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=2)  # executor-made
    EXECUTORS.append(executor)
    return sum(executor.map(abs, range(-5, 5)))  # executor-used


def test_a_module_level_executor_is_clean_in_a_soak_and_in_production() -> None:
    report = soak(module_level_executor, invocations=200)
    assert report.clean, str(report)
    guarded = safehandler.guard(module_level_executor, mode="strict")
    for _ in range(20):
        assert guarded({}, None) == 25


def test_a_per_call_executor_is_one_finding_at_the_line_that_made_it() -> None:
    try:
        report = soak(per_call_executor, invocations=30)
    finally:
        for executor in EXECUTORS:
            executor.shutdown()
        EXECUTORS.clear()
    [finding] = [f for f in report.findings if f.kind == "thread"]
    assert finding.noun == "idle thread"
    assert finding.count == 60  # two workers per executor, named by their owner
    assert finding.detail == "of concurrent.futures.ThreadPoolExecutor objects, waiting for work"
    assert finding.site is not None
    assert finding.site.lineno == line_of("executor-made")
    assert finding.site.via == "concurrent.futures.ThreadPoolExecutor"
    assert finding.site.first_use is not None
    assert finding.site.first_use[1] == line_of("executor-used")
    assert "first used at" in str(finding)


def test_a_module_level_requests_session_is_clean_in_a_soak_and_in_production(
    url: str,
) -> None:
    session = requests.Session()

    def handler(event: Any, context: Any) -> int:
        return session.get(url).status_code

    try:
        report = soak(handler, invocations=200)
        assert report.clean, str(report)
        guarded = safehandler.guard(handler, mode="strict")
        for _ in range(20):
            assert guarded({}, None) == 200
    finally:
        session.close()


def test_a_requests_session_per_call_is_found_at_its_constructor(url: str) -> None:
    kept: list[requests.Session] = []

    def handler(event: Any, context: Any) -> int:
        session = requests.Session()  # session-made
        kept.append(session)
        return session.get(url).status_code  # session-used

    guarded = safehandler.guard(handler, mode="report", leak_span=1)
    engine = engine_of(guarded)
    assert engine is not None
    found: list[Any] = []
    try:
        with engine.observe(lambda invocation: found.extend(invocation.findings), quiet=True):
            for _ in range(3):
                assert guarded({}, None) == 200
    finally:
        for session in kept:
            session.close()
    [finding] = [f for f in found if f.kind == "socket"]
    assert (finding.count, finding.invocation) == (2, 2)
    assert finding.site is not None
    assert (finding.site.lineno, finding.site.via) == (line_of("session-made"), "requests.Session")
    assert finding.site.first_use is not None
    assert finding.site.first_use[1] == line_of("session-used")


def test_a_timer_is_background_work_and_an_idle_consumer_is_not_running(
    guarded: Any,
) -> None:
    """A thread that wakes by itself resumes in a later invocation: a finding at once. One
    parked on an empty queue with no timeout does not run: counted, like an open file."""
    import queue

    work: queue.Queue[int] = queue.Queue()
    stop = threading.Event()
    timers: list[threading.Timer] = []

    def handler(event: Any, context: Any) -> None:
        if event.get("timer"):
            timer = threading.Timer(30, lambda: None)
            timers.append(timer)
            timer.start()  # timer-started
        else:
            threading.Thread(target=work.get, name="consumer", daemon=True).start()  # idle-start

    try:
        timed = guarded(handler, thread_grace_ms=0)
        timed(1, {"timer": True})
        [finding] = timed.findings
        assert (finding.noun, finding.invocation) == ("thread", 1)
        assert finding.site is not None
        assert finding.site.lineno == line_of("timer-started")

        idle = guarded(handler, thread_grace_ms=0)
        idle(1, {"timer": False})
        assert idle.findings == []  # parked: not background work
        idle(1, {"timer": False})
        [finding] = idle.findings  # but one more per call is growth
        assert (finding.noun, finding.count, finding.invocation) == ("idle thread", 2, 2)
        assert finding.site is not None
        assert finding.site.lineno == line_of("idle-start")
    finally:
        for timer in timers:
            timer.cancel()
        for _ in range(2):
            work.put(0)
        stop.set()


def test_an_owner_whose_hash_needs_its_state_is_registered_after_its_init() -> None:
    """Owners are remembered before their ``__init__`` runs (what the constructor opens is
    theirs); one that cannot be hashed before it is remembered after."""
    from safehandler import _scope
    from safehandler.integrations import owners

    class Client:
        def __init__(self) -> None:
            self.key = "k"

        def __hash__(self) -> int:
            return hash(self.key)  # AttributeError before __init__

    owners._wrap(Client, "test.Client")
    made: list[Client] = []

    def handler(event: Any, context: Any) -> None:
        made.append(Client())  # client-made

    safehandler.guard(handler)({}, None)
    owner = _scope.owner_of(made[0])
    assert owner is not None
    assert owner.site is not None
    assert (owner.kind, owner.site.lineno) == ("test.Client", line_of("client-made"))

"""The thread probe: threads started in an invocation and alive at its end."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import safehandler
from safehandler.testing import FakeLambdaContext, soak, soak_policy

from ._lines import line_of

HERE = os.path.relpath(__file__)


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    """Leaked threads wait on this; set at teardown so they end."""
    event = threading.Event()
    yield event
    event.set()


def test_thread_alive_after_the_invocation_is_a_finding_at_once(guarded, stop) -> None:
    def refresh() -> None:
        while not stop.wait(0.05):  # wakes by itself: background work, not a parked worker
            pass

    def handler(event, context):
        threading.Thread(target=refresh, name="cache-refresher", daemon=True).start()  # leak-thread

    guard = guarded(handler)
    guard(1)
    [finding] = guard.findings
    assert (finding.kind, finding.count, finding.invocation) == ("thread", 1, 1)
    assert finding.site is not None
    assert finding.site.location == f"{HERE}:{line_of('leak-thread')}"
    assert finding.detail == (
        "named 'cache-refresher' (daemon, target="
        "test_thread_alive_after_the_invocation_is_a_finding_at_once.<locals>.refresh)"
        " still running"
    )
    guard(1)
    assert [f.count for f in guard.findings] == [1, 2]


def test_non_daemon_threads_are_reported_the_same(guarded, stop) -> None:
    def consume() -> None:
        while not stop.is_set():
            time.sleep(0.01)

    def handler(event, context):
        threading.Thread(target=consume, name="consumer").start()

    guard = guarded(handler)
    guard(1)
    [finding] = guard.findings
    assert "(non-daemon, target=" in finding.detail
    assert finding.detail.endswith(".consume) still running")


def test_thread_joined_before_return_is_clean(guarded) -> None:
    def handler(event, context):
        worker = threading.Thread(target=time.sleep, args=(0.001,))
        worker.start()
        worker.join()

    guard = guarded(handler)
    guard(20)
    assert guard.findings == []


def test_thread_ending_within_the_grace_period_is_not_a_leak(guarded) -> None:
    def handler(event, context):
        threading.Thread(target=time.sleep, args=(0.002,)).start()

    guard = guarded(handler, thread_grace_ms=500)
    guard(5)
    assert guard.findings == []


def test_without_grace_the_same_thread_is_caught(guarded, stop) -> None:
    def handler(event, context):
        threading.Thread(target=stop.wait, args=(0.2,)).start()

    guard = guarded(handler, thread_grace_ms=0)
    guard(1)
    assert [f.kind for f in guard.findings] == ["thread"]


@pytest.mark.parametrize(("timeout_s", "reported"), [(0.04, True), (30.0, False)])
def test_the_grace_period_never_runs_past_the_invocations_deadline(
    timeout_s: float, reported: bool
) -> None:
    # The thread ends 0.2 s after the call, well within the 5 s grace: waited for when the
    # invocation has time left, reported at once when its deadline is nearer than that.
    def handler(event, context):
        threading.Thread(target=time.sleep, args=(0.2,)).start()

    guard = safehandler.guard(handler, mode="report", thread_grace_ms=5000)
    guard({}, FakeLambdaContext(timeout_s=timeout_s))
    findings = guard.__safehandler__.findings
    assert [f.kind for f in findings] == (["thread"] if reported else [])


def test_threads_from_init_are_baseline(guarded, stop) -> None:
    background = threading.Thread(target=stop.wait, daemon=True)
    background.start()
    guard = guarded(lambda event, context: None)
    guard(10)
    assert guard.findings == []


def test_executor_never_shut_down_names_its_constructor_and_first_use(guarded) -> None:
    pools: list[ThreadPoolExecutor] = []

    def handler(event, context):
        pool = ThreadPoolExecutor(max_workers=1)  # leak-pool
        pools.append(pool)
        pool.submit(time.sleep, 0).result()  # pool-used

    guard = guarded(handler)
    try:
        guard(1)
        assert guard.findings == []  # one idle worker, parked: it could be a module's pool
        guard(1)
    finally:
        for pool in pools:
            pool.shutdown(wait=True)
    [finding] = guard.findings
    assert (finding.kind, finding.noun, finding.count) == ("thread", "idle thread", 2)
    assert finding.site is not None
    assert finding.site.location == f"{HERE}:{line_of('leak-pool')}"
    assert finding.site.via == "concurrent.futures.ThreadPoolExecutor"
    assert finding.site.first_use is not None
    assert finding.site.first_use[1] == line_of("pool-used")


def test_executor_used_as_context_manager_is_clean(guarded) -> None:
    def handler(event, context):
        with ThreadPoolExecutor(max_workers=2) as pool:
            assert list(pool.map(abs, [-1, -2])) == [1, 2]

    guard = guarded(handler)
    guard(10)
    assert guard.findings == []


def test_timer_left_pending_is_a_finding(guarded) -> None:
    timers: list[threading.Timer] = []

    def handler(event, context):
        timer = threading.Timer(30, print)
        timer.start()
        timers.append(timer)

    guard = guarded(handler)
    try:
        guard(1)
    finally:
        for timer in timers:
            timer.cancel()
    [finding] = guard.findings
    assert "target=Timer.run" in finding.detail


def test_one_slow_exit_does_not_make_every_later_thread_of_its_site_a_finding(guarded) -> None:
    """A thread that outlived the grace once (a loaded machine) and was gone by the next
    invocation was slow, not leaked: later threads of its site are waited for again."""
    delays = iter([0.5] + [0.0] * 9)

    def handler(event, context):
        threading.Thread(target=time.sleep, args=(next(delays),)).start()  # slow-once

    guard = guarded(handler, thread_grace_ms=100)
    guard(1)
    time.sleep(0.6)  # between invocations, the slow one ends
    guard(9)
    [finding] = guard.findings  # the slow one only
    assert (finding.kind, finding.count, finding.invocation) == ("thread", 1, 1)
    assert finding.site is not None
    assert finding.site.lineno == line_of("slow-once")


def test_a_parked_worker_whose_stop_is_queued_is_waited_for() -> None:
    """AnyIO's shape: a worker per request, parked on its queue, told to stop as the request
    ends. It wakes a moment later: not an idle thread left behind."""

    def handler(event, context):
        work: queue.Queue[None] = queue.Queue()
        threading.Thread(target=work.get).start()
        # the stop comes from the module-level pool a moment later (its threads are not ours)
        STOPPER.submit(lambda: (time.sleep(0.02), work.put(None)))

    report = soak(handler, invocations=30, policy=soak_policy(thread_grace_ms=500))
    assert report.clean, str(report)


STOPPER = ThreadPoolExecutor(max_workers=1)

"""Bounded is not a leak: in a soak, a container or pool whose growth stops once the events
repeat is a note, not a failing verdict. Growth that goes on, or that only some events make
and those events keep making, stays a finding.
"""

from __future__ import annotations

import itertools
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from safehandler.testing import soak

TENANTS = [{"tenant": f"tenant-{n}"} for n in range(10)]
MEMO: dict[str, str] = {}  # the handler module's memo: one entry per tenant
SEEN: list[int] = []  # the handler module's unbounded log


@pytest.fixture(autouse=True)
def _empty() -> Iterator[None]:
    MEMO.clear()
    SEEN.clear()
    yield
    MEMO.clear()
    SEEN.clear()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket nobody accepts on: connections complete in its backlog, and only
    the clients' fds are this process's new ones."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    yield server
    server.close()


def memo_handler(event: Any, context: Any) -> str:
    return MEMO.setdefault(event["tenant"], event["tenant"].upper())


def test_a_memo_of_ten_tenants_is_a_note_not_a_leak() -> None:
    report = soak(memo_handler, events=TENANTS, invocations=200)
    assert report.clean, str(report)
    [note] = [n for n in report.notes if n.startswith("bounded")]
    assert note.startswith(
        "bounded, not a leak: tests.test_bounded.MEMO grew: 1 -> 10 items since invocation 1"
    )
    assert note.endswith(
        "it stopped growing at invocation 10 and the same events did not grow it in the 190 "
        "invocations since"
    )
    assert "verdict: clean" in str(report)


def test_a_pool_that_stops_at_three_is_a_note_not_a_leak(listener: socket.socket) -> None:
    pool: list[socket.socket] = []

    def handler(event: Any, context: Any) -> int:
        if len(pool) < 3:  # grows on demand, up to its size
            pool.append(socket.create_connection(listener.getsockname()))
        return len(pool)

    try:
        report = soak(handler, invocations=100)
    finally:
        for sock in pool:
            sock.close()
    assert report.clean, str(report)
    [note] = [n for n in report.notes if n.startswith("bounded")]
    assert note.startswith("bounded, not a leak: 3 sockets to 127.0.0.1:")
    assert "it stopped growing at invocation 3 " in note


def test_a_memo_keyed_by_something_new_every_time_is_a_leak() -> None:
    counter = itertools.count()

    def handler(event: Any, context: Any) -> None:
        SEEN.append(next(counter))

    report = soak(handler, events=TENANTS, invocations=200)
    [finding] = report.findings
    assert finding.kind == "global"
    assert finding.detail.startswith("tests.test_bounded.SEEN grew")
    assert not [n for n in report.notes if n.startswith("bounded")]


def test_growth_that_one_event_keeps_making_is_a_leak(listener: socket.socket) -> None:
    kept: list[socket.socket] = []

    def handler(event: Any, context: Any) -> None:
        if event["tenant"] == "tenant-3":  # one tenant's path leaks, every time it comes
            kept.append(socket.create_connection(listener.getsockname()))

    try:
        report = soak(handler, events=TENANTS, invocations=200)
    finally:
        for sock in kept:
            sock.close()
    [finding] = report.findings
    assert (finding.kind, finding.count) == ("socket", 20)
    assert finding.extra["path"] == "only for events #3"


def test_growth_that_stopped_only_lately_is_still_a_finding(listener: socket.socket) -> None:
    """Quiet for fewer invocations than the growth took: too soon to call it bounded."""
    pool: list[socket.socket] = []

    def handler(event: Any, context: Any) -> None:
        if len(pool) < 60:
            pool.append(socket.create_connection(listener.getsockname()))

    try:
        report = soak(handler, invocations=100)
    finally:
        for sock in pool:
            sock.close()
    [finding] = report.findings
    assert (finding.kind, finding.count) == ("socket", 60)


def test_the_html_report_shows_the_notes_and_each_fix() -> None:
    from safehandler.testing.html_report import render_html

    report = soak(memo_handler, events=TENANTS, invocations=100)
    page = render_html(report)
    assert "<h2>Notes</h2>" in page
    assert "bounded, not a leak: tests.test_bounded.MEMO grew" in page
    kept: list[Any] = []

    def leaky(event: Any, context: Any) -> None:
        kept.append(open(__file__, "rb"))

    try:
        page = render_html(soak(leaky, invocations=5))
    finally:
        for file in kept:
            file.close()
    assert '<span class="advice">fix: close it before returning' in page


# -- production: growth is reported only if it keeps growing -----------------------------


def _production(guarded: Any, handler: Any, events: list[Any]) -> list[Any]:
    guard = guarded(handler, leak_span=None)  # the default: auto, 32 in report mode
    for event in events:
        guard(1, event)
    return guard.findings


def _tenants(count: int, seed: int = 7) -> list[dict[str, str]]:
    """Tenants as traffic brings them: at random, so the last new one may come late."""
    chooser = random.Random(seed)
    return [chooser.choice(TENANTS) for _ in range(count)]


@pytest.mark.parametrize("seed", [1, 2, 3, 7])
def test_in_production_a_memo_of_ten_tenants_is_never_reported(guarded, seed: int) -> None:
    assert _production(guarded, memo_handler, _tenants(300, seed)) == []
    assert len(MEMO) == 10


def test_in_production_a_pool_that_stops_at_three_is_never_reported(
    guarded, listener: socket.socket
) -> None:
    pool: list[socket.socket] = []

    def handler(event: Any, context: Any) -> int:
        if len(pool) < 3:
            pool.append(socket.create_connection(listener.getsockname()))
        return len(pool)

    try:
        assert _production(guarded, handler, [{}] * 100) == []
    finally:
        for sock in pool:
            sock.close()


def test_in_production_growth_that_keeps_its_pace_is_reported_after_the_span(guarded) -> None:
    def handler(event: Any, context: Any) -> None:
        SEEN.append(1)

    findings = _production(guarded, handler, [{}] * 100)
    assert [(f.noun, f.invocation) for f in findings][:1] == [("module global", 32)]


def test_in_production_a_slow_leak_is_reported_at_its_pace(
    guarded, listener: socket.socket
) -> None:
    """One invocation in 25 leaks a socket (one tenant's path): slow, but it never stops; it
    is reported at its second growth, which comes after the 8 invocations a pool gets."""
    kept: list[socket.socket] = []

    def handler(event: Any, context: Any) -> None:
        if event["n"] % 25 == 0:
            kept.append(socket.create_connection(listener.getsockname()))

    try:
        findings = _production(guarded, handler, [{"n": n} for n in range(1, 201)])
    finally:
        for sock in kept:
            sock.close()
    [first, *_] = findings
    assert (first.kind, first.count, first.invocation) == ("socket", 2, 50)


def test_in_production_a_leak_that_a_full_pool_stops_is_reported(
    guarded, listener: socket.socket
) -> None:
    """Growth that stops because a limit ran out (SQLAlchemy's checkouts stop at 15): what a
    pool keeps is reported once it grew for 8 invocations, before the limit is reached."""
    kept: list[socket.socket] = []

    def handler(event: Any, context: Any) -> None:
        if len(kept) < 12:
            kept.append(socket.create_connection(listener.getsockname()))

    try:
        findings = _production(guarded, handler, [{}] * 50)
    finally:
        for sock in kept:
            sock.close()
    assert [(f.kind, f.count, f.invocation) for f in findings][:1] == [("socket", 8, 8)]

"""Regression guard for the cost model, in counts rather than timings (CI machines are noisy).

The steady state (nothing leaking) must stay a few counter reads: no fd listing, no readlink,
no psutil, and under a hundred Python-level calls per invocation (72 to 83 with the globals
probe's rotation, when this was written; 93 before it).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import safehandler

STEADY_CALL_BUDGET = 95
EXPENSIVE = {"listdir", "readlink", "scandir", "net_connections", "connections", "stat"}


def profile_one_call(handler: Callable[..., Any]) -> Counter[str]:
    calls: Counter[str] = Counter()

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[frame.f_code.co_name] += 1
        elif event == "c_call":
            calls["c:" + getattr(arg, "__name__", "?")] += 1

    sys.setprofile(count)
    try:
        handler({}, None)
    finally:
        sys.setprofile(None)
    return calls


def test_steady_state_is_a_few_counter_reads() -> None:
    handler = safehandler.guard(lambda event, context: 1)
    for _ in range(5):  # past the first invocation's baseline
        handler({}, None)
    calls = profile_one_call(handler)
    assert sum(calls.values()) <= STEADY_CALL_BUDGET, calls.most_common(10)
    assert not {name.removeprefix("c:") for name in calls} & EXPENSIVE
    assert calls["c:fstat"] == 2  # the fd count, before and after
    assert calls["c:pread"] == 1  # RSS, after only


def test_details_are_paid_only_when_something_was_created(tmp_path: Any) -> None:
    def handler(event: Any, context: Any) -> None:
        with open(tmp_path / "f", "w", encoding="utf-8"):
            pass

    guarded = safehandler.guard(handler)
    for _ in range(5):
        guarded({}, None)
    calls = profile_one_call(guarded)
    assert calls["c:listdir"] == 1  # a creation event: one listing, to see what stayed open
    # nothing new stayed open: only the listing's own, already closed, fd is looked at
    assert calls["c:readlink"] <= 1

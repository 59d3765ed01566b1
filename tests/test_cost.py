"""Regression guard for the cost model, in counts rather than timings (CI machines are noisy).

The steady state (nothing leaking) must stay a few counter reads: no fd listing, no readlink,
no psutil, and under a hundred Python-level calls per invocation (72 to 83 with the globals
probe's rotation, when this was written; 93 before it).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import safehandler
from safehandler.probes import fds

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
    # a creation event, closed again: one poll of the numbers a new fd would take, no listing
    assert calls["c:listdir"] == 0
    assert calls["c:readlink"] == 0
    assert calls["c:poll"] == 1


def test_a_file_kept_open_is_listed_and_described(tmp_path: Any) -> None:
    kept: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        kept.append(open(tmp_path / "f", "a", encoding="utf-8"))

    guarded = safehandler.guard(handler)
    try:
        guarded({}, None)
        calls = profile_one_call(guarded)
    finally:
        for item in kept:
            item.close()
    assert calls["c:listdir"] == 1  # the count moved: one listing
    # only the new fd is described (and the listing's own, closed by then, is tried)
    assert 1 <= calls["c:readlink"] <= 2


@pytest.fixture
def no_kernel_count(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Lambda's kernel, emulated, relisting every 64 snapshots (32 invocations) whatever the
    listing costs on this machine."""
    monkeypatch.setattr(fds, "_RELIST_MAX", fds._RELIST_MIN)
    fds.emulate_kernel_without_count()
    yield
    fds.emulate_kernel_without_count(False)


@pytest.mark.usefixtures("no_kernel_count")
def test_without_a_kernel_count_the_steady_state_lists_rarely() -> None:
    handler = safehandler.guard(lambda event, context: 1)
    for _ in range(5):
        handler({}, None)
    calls = profile_one_call(handler)
    assert not {name.removeprefix("c:") for name in calls} & EXPENSIVE
    assert calls["c:poll"] == 2  # the gate, before and after
    listings = 0
    real_listdir = os.listdir

    def counting(path: Any) -> Any:
        nonlocal listings
        listings += 1
        return real_listdir(path)

    fds.os.listdir = counting  # type: ignore[assignment]
    try:
        for _ in range(640):
            handler({}, None)
    finally:
        fds.os.listdir = real_listdir  # type: ignore[assignment]
    assert 10 <= listings <= 20  # one per 64 snapshots: 1,280 snapshots


@pytest.mark.usefixtures("no_kernel_count")
def test_without_a_kernel_count_what_hides_from_the_gate_is_found_by_a_relisting(
    guarded: Any, tmp_path: Any
) -> None:
    kept: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        # more temporaries at once than the gate watches, then one kept: the gate sees nothing
        temporaries = [open(tmp_path / f"t{i}", "w", encoding="utf-8") for i in range(12)]
        kept.append(open(tmp_path / "kept", "a", encoding="utf-8"))
        for item in temporaries:
            item.close()

    guard = guarded(handler)
    try:
        calls = 0
        while not guard.findings and calls < 200:
            guard(1)
            calls += 1
    finally:
        for item in kept:
            item.close()
    assert 32 <= calls <= 70  # found by the second relisting, not before the first

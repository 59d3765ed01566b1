"""Exit callbacks registered during an invocation: named, at the line that registered them; a
library's one-time lazy registration (the first ``weakref.finalize``) is not a finding."""

from __future__ import annotations

import atexit
import functools
import os
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from ._lines import line_of

HERE = os.path.relpath(__file__)


def flush_cache() -> None:
    """The callback a leaking handler registers on every call."""


@pytest.fixture
def registered() -> Iterator[list[Any]]:
    callbacks: list[Any] = []
    yield callbacks
    for callback in callbacks:
        atexit.unregister(callback)


def test_a_callback_registered_per_call_is_named_at_its_line(guarded, registered) -> None:
    def handler(event: Any, context: Any) -> None:
        registered.append(flush_cache)
        atexit.register(flush_cache)  # atexit-per-call

    guard = guarded(handler)
    guard(4)
    findings = [f for f in guard.findings if f.noun == "atexit callback"]
    # reported when it first grows, then as it doubles
    assert [(f.count, f.invocation) for f in findings] == [(1, 1), (2, 2), (4, 4)]
    last = findings[-1]
    assert last.kind == "global"
    assert last.detail.startswith("flush_cache registered during the invocation")
    assert last.site is not None
    assert last.site.location == f"{HERE}:{line_of('atexit-per-call')}"


def test_a_partial_is_named_by_its_function(guarded, registered) -> None:
    def handler(event: Any, context: Any) -> None:
        callback = functools.partial(flush_cache)
        registered.append(callback)
        atexit.register(callback)

    guard = guarded(handler)
    guard(1)
    [finding] = [f for f in guard.findings if f.noun == "atexit callback"]
    assert finding.detail.startswith("partial(flush_cache) registered")


def test_the_first_weakref_finalize_of_a_process_is_not_a_finding(
    guarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first ``weakref.finalize`` registers the module's exit hook once (requests, urllib3
    and boto3 all make one): library code, not the handler's registration."""
    monkeypatch.setattr(weakref.finalize, "_registered_with_atexit", False)  # as in a new process
    kept: list[Any] = []

    class Client:
        pass

    def handler(event: Any, context: Any) -> None:
        client = Client()
        weakref.finalize(client, kept.clear)
        kept.append(client)
        kept.clear()

    guard = guarded(handler)
    guard(3)
    assert weakref.finalize._registered_with_atexit  # type: ignore[attr-defined]
    assert [f for f in guard.findings if f.noun == "atexit callback"] == []

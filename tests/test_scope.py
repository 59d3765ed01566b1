"""The invocation scope: what an invocation creates is its own, in its thread or task."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from safehandler import _scope

from ._fork import in_forked_child
from ._lines import line_of


def test_nothing_is_recorded_outside_an_invocation(tmp_path: Path) -> None:
    _scope.install()
    assert _scope.current() is None
    with open(tmp_path / "f", "w", encoding="utf-8"):
        pass
    assert _scope.current() is None


def test_recording_is_scoped_to_begin_and_end(tmp_path: Path) -> None:
    _scope.install()
    opened = _scope.begin()
    assert opened is not None
    try:
        with open(tmp_path / "f", "w", encoding="utf-8"):  # recorded-open
            pass
    finally:
        scope = _scope.end(opened)
    [creation] = [c for c in scope.creations if c.kind == "file"]
    assert creation.ref == str(tmp_path / "f")
    assert creation.site is not None
    assert creation.site.lineno == line_of("recorded-open")
    with open(tmp_path / "g", "w", encoding="utf-8"):
        pass
    assert [c.ref for c in scope.creations if c.kind == "file"] == [str(tmp_path / "f")]


def test_a_nested_begin_joins_the_open_scope() -> None:
    opened = _scope.begin()
    assert opened is not None
    try:
        assert _scope.begin() is None  # the enclosing invocation owns it
        assert _scope.current() is opened[0]
    finally:
        _scope.end(opened)
    assert _scope.current() is None


def test_concurrent_threads_each_record_into_their_own_scope(tmp_path: Path) -> None:
    _scope.install()
    ready = threading.Barrier(2)
    scopes: dict[str, _scope.Scope] = {}

    def invocation(name: str) -> None:
        opened = _scope.begin()
        assert opened is not None
        ready.wait()  # both scopes are open at once
        with open(tmp_path / name, "w", encoding="utf-8"):
            pass
        ready.wait()
        scopes[name] = _scope.end(opened)

    threads = [threading.Thread(target=invocation, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, scope in scopes.items():
        assert [c.ref for c in scope.creations if c.kind == "file"] == [str(tmp_path / name)]
        assert scope.overlapped
    assert scopes["a"].serial != scopes["b"].serial


def test_a_thread_started_in_an_invocation_records_into_it_while_it_is_open(
    tmp_path: Path,
) -> None:
    _scope.install()
    go_on = threading.Event()
    done = threading.Event()

    def work() -> None:
        with open(tmp_path / "inside", "w", encoding="utf-8"):
            pass
        done.set()
        go_on.wait(5)
        with open(tmp_path / "after", "w", encoding="utf-8"):  # after the invocation ended
            pass

    opened = _scope.begin()
    assert opened is not None
    thread = threading.Thread(target=work)
    thread.start()
    done.wait(5)
    scope = _scope.end(opened)
    go_on.set()
    thread.join()
    files = [c.ref for c in scope.creations if c.kind == "file"]
    assert files == [str(tmp_path / "inside")]
    assert [c.kind for c in scope.creations].count("thread") == 1
    assert not scope.overlapped


def test_an_async_task_keeps_its_scope_across_awaits(tmp_path: Path) -> None:
    _scope.install()

    async def invocation(name: str) -> _scope.Scope:
        opened = _scope.begin()
        assert opened is not None
        await asyncio.sleep(0.01)  # the other task runs meanwhile
        with open(tmp_path / name, "w", encoding="utf-8"):
            pass
        await asyncio.sleep(0.01)
        return _scope.end(opened)

    async def both() -> list[_scope.Scope]:
        return list(await asyncio.gather(invocation("x"), invocation("y")))

    x, y = asyncio.run(both())
    assert [c.ref for c in x.creations if c.kind == "file"] == [str(tmp_path / "x")]
    assert [c.ref for c in y.creations if c.kind == "file"] == [str(tmp_path / "y")]


def test_a_forked_child_starts_with_no_scope(tmp_path: Path) -> None:
    _scope.install()
    opened = _scope.begin()
    assert opened is not None
    try:

        def measure() -> list[int]:
            with open(tmp_path / "child", "w", encoding="utf-8"):
                pass
            files = [c for c in opened[0].creations if c.kind == "file"]
            return [int(_scope.current() is None), len(files)]

        no_scope, recorded = in_forked_child(measure)
    finally:
        scope = _scope.end(opened)
    assert no_scope == 1
    assert recorded == 0  # the child recorded nothing into its copy of the parent's scope
    assert os.path.exists(tmp_path / "child")
    assert not [c for c in scope.creations if c.kind == "file"]

"""Fault injection: every hook safehandler installs breaks on purpose; the handler never sees it.

For each hook (the audit hook, ``Thread.start``, ``atexit.register``, the scope, the driver
integrations, the owners, the log line itself), the guarded handler returns exactly what it
returns unguarded, or raises exactly what it raises, and safehandler says so in one warning.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest

import safehandler
from safehandler import _scope
from safehandler.integrations import _use, owners

from .strategies import SENTINEL


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.WARNING, logger="safehandler")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "safehandler"]


@pytest.fixture(autouse=True)
def fresh_fault_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hook warns once per process: each test starts as a new process would."""
    monkeypatch.setattr(_scope, "_faulted", set())


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected fault")


def _handler_touching_everything(tmp_path: Path) -> Callable[[Any, Any], Any]:
    def handler(event: Any, context: Any) -> Any:
        with open(tmp_path / "f", "w", encoding="utf-8"):
            pass
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        with sqlite3.connect(tmp_path / "db.sqlite") as conn:
            conn.execute("SELECT 1")
        conn.close()
        return SENTINEL

    return handler


HOOKS = {
    # what to break -> where it lives
    "capture_site": (_scope, "capture_site"),  # the audit hook's and Thread.start's frame walk
    "owner_in": (_scope, "owner_in"),  # the owners' lookup in both
}


@pytest.mark.parametrize("hook", list(HOOKS))
def test_a_broken_recording_hook_changes_nothing_and_warns_once(
    hook: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    warnings_seen: Callable[[], list[str]],
) -> None:
    handler = safehandler.guard(_handler_touching_everything(tmp_path))
    assert handler({}, None) is SENTINEL
    module, name = HOOKS[hook]
    monkeypatch.setattr(module, name, _boom)
    for _ in range(3):
        assert handler({}, None) is SENTINEL
    faults = [m for m in warnings_seen() if "hook failed" in m]
    assert faults, warnings_seen()
    assert len({m.split(" hook failed")[0] for m in faults}) == len(faults)  # once per hook
    assert all("RuntimeError('injected fault')" in m for m in faults)


def test_a_broken_atexit_hook_still_registers_the_callback(
    monkeypatch: pytest.MonkeyPatch, warnings_seen: Callable[[], list[str]]
) -> None:
    called: list[int] = []

    def handler(event: Any, context: Any) -> Any:
        atexit.register(called.append, 1)
        return SENTINEL

    guarded = safehandler.guard(handler)
    monkeypatch.setattr(_scope, "capture_site", _boom)
    before = atexit._ncallbacks()  # type: ignore[attr-defined]
    try:
        assert guarded({}, None) is SENTINEL
        assert atexit._ncallbacks() == before + 1  # type: ignore[attr-defined]
    finally:
        atexit.unregister(called.append)
    assert [m for m in warnings_seen() if "atexit.register hook failed" in m]


def test_a_broken_scope_is_one_warning_and_the_handler_runs(
    monkeypatch: pytest.MonkeyPatch, warnings_seen: Callable[[], list[str]]
) -> None:
    guarded = safehandler.guard(lambda event, context: SENTINEL)
    monkeypatch.setattr(_scope, "begin", _boom)
    assert guarded({}, None) is SENTINEL
    monkeypatch.undo()
    opened = _scope.begin()
    assert opened is not None
    _scope.end(opened)
    monkeypatch.setattr(_scope, "end", _boom)
    assert guarded({}, None) is SENTINEL
    assert len([m for m in warnings_seen() if "internal error" in m]) >= 1


def test_a_log_handler_that_raises_never_reaches_the_handler(tmp_path: Path) -> None:
    """A broken log shipper on the safehandler logger: findings cannot be told, the handler's
    result and error stand, and nothing is raised from safehandler's own warnings either."""

    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise OSError("the log shipper is down")

        def handle(self, record: logging.LogRecord) -> bool:  # no handleError() safety net
            self.emit(record)
            return True

    logger = logging.getLogger("safehandler")
    broken = Broken()
    logger.addHandler(broken)
    level, logger.level = logger.level, logging.WARNING
    kept: list[Any] = []
    try:
        with pytest.raises(OSError, match="shipper"):  # the set-up: a warning does raise
            logger.warning("a line")

        def handler(event: Any, context: Any) -> Any:
            kept.append(open(tmp_path / "leak", "a", encoding="utf-8"))
            if event.get("fail"):
                raise KeyError("the handler's own")
            return SENTINEL

        guarded = safehandler.guard(handler, leak_after=1)
        for _ in range(3):
            assert guarded({}, None) is SENTINEL
        with pytest.raises(KeyError, match="the handler's own"):
            guarded({"fail": True}, None)
    finally:
        logger.removeHandler(broken)
        logger.level = level
        for item in kept:
            item.close()


def test_a_broken_driver_hook_keeps_the_connection(
    mysql_kwargs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    warnings_seen: Callable[[], list[str]],
) -> None:
    from safehandler.integrations import pymysql as pymysql_integration

    monkeypatch.setattr(pymysql_integration, "_register", _boom)
    monkeypatch.setattr(_use, "_handles", _BrokenMapping())

    def handler(event: Any, context: Any) -> Any:
        conn = pymysql.connect(**mysql_kwargs)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone()
        finally:
            conn.close()

    guarded = safehandler.guard(handler)
    for _ in range(3):
        assert guarded({}, None) == (1,)
    seen = warnings_seen()
    assert len([m for m in seen if "PyMySQL hook failed" in m]) == 1
    assert len([m for m in seen if "driver use hook failed" in m]) == 1


class _BrokenMapping(dict[Any, Any]):
    def get(self, key: Any, default: Any = None) -> Any:
        raise RuntimeError("injected fault")


def test_a_broken_owner_hook_keeps_the_object(
    monkeypatch: pytest.MonkeyPatch, warnings_seen: Callable[[], list[str]]
) -> None:
    import concurrent.futures

    monkeypatch.setattr(owners, "register_owner", _boom)

    @safehandler.guard
    def handler(event: Any, context: Any) -> int:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
            return executor.submit(abs, -3).result()

    for _ in range(3):
        assert handler({}, None) == 3
    assert len([m for m in warnings_seen() if "ThreadPoolExecutor hook failed" in m]) == 1


pytest_plugins = ["tests.db_fixtures"]

"""The line that changed global state: for every kind watched, a change repeated per
invocation is named at the line that made it (the witness traces the invocations after the
first change); a helper's line comes with the handler line that called it. The trace function
is chained to the one already set and put back; a change made once has no line and leaves no
tracing behind."""

from __future__ import annotations

import builtins
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._lines import line_of

HERE = os.path.relpath(__file__)
GROWING: list[int] = []


@pytest.fixture(autouse=True)
def _trace_function_kept() -> Iterator[None]:
    """Every test here leaves the trace function (coverage's, under coverage) as it found it."""
    before = sys.gettrace()
    yield
    assert sys.gettrace() is before


def _site_of(findings: list[Any], noun: str) -> str | None:
    found = [f for f in findings if f.noun == noun and f.site is not None]
    return found[-1].site.location if found else None


def _run(guarded: Callable[..., Any], handler: Callable[..., Any], calls: int = 3) -> list[Any]:
    guard = guarded(handler)
    guard(calls)
    return list(guard.findings)


def test_a_growing_module_global_is_named_at_its_line(guarded) -> None:
    def handler(event: Any, context: Any) -> None:
        total = len(GROWING)
        GROWING.append(total)  # grows-global

    try:
        findings = _run(guarded, handler, 5)
    finally:
        GROWING.clear()
    assert _site_of(findings, "module global") == f"{HERE}:{line_of('grows-global')}"


def test_a_stdlib_function_replaced_per_call_is_named_at_its_line(
    guarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json, "dumps", json.dumps)

    def handler(event: Any, context: Any) -> None:
        original = json.dumps
        json.dumps = functools.partial(original)  # patches-json

    findings = _run(guarded, handler)
    assert _site_of(findings, "stdlib attribute") == f"{HERE}:{line_of('patches-json')}"


def test_a_builtin_replaced_per_call_is_named_at_its_line(
    guarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builtins, "print", builtins.print)

    def handler(event: Any, context: Any) -> None:
        builtins.print = lambda *args, **kwargs: None  # patches-print

    findings = _run(guarded, handler)
    nouns = {f.noun for f in findings}
    [noun] = [n for n in nouns if "builtin" in n]
    assert _site_of(findings, noun) == f"{HERE}:{line_of('patches-print')}"


def test_an_environment_variable_per_call_is_named_at_its_line(guarded) -> None:
    names: list[str] = []

    def handler(event: Any, context: Any) -> None:
        name = f"SAFEHANDLER_TEST_LINES_{len(names)}"
        names.append(name)
        os.environ[name] = "1"  # sets-env

    try:
        findings = _run(guarded, handler)
    finally:
        for name in names:
            os.environ.pop(name, None)
    assert _site_of(findings, "environment variable") == f"{HERE}:{line_of('sets-env')}"


def test_a_sys_path_entry_per_call_is_named_at_its_line(guarded) -> None:
    added: list[str] = []

    def handler(event: Any, context: Any) -> None:
        entry = f"/nonexistent/safehandler-lines-{len(added)}"
        added.append(entry)
        sys.path.append(entry)  # appends-path

    try:
        findings = _run(guarded, handler)
    finally:
        for entry in added:
            while entry in sys.path:
                sys.path.remove(entry)
    assert _site_of(findings, "sys.path entry") == f"{HERE}:{line_of('appends-path')}"


def test_a_logging_handler_per_call_is_named_at_the_handler_line(guarded) -> None:
    logger = logging.getLogger("safehandler.tests.lines")

    def configure() -> None:
        logger.addHandler(logging.NullHandler())  # adds-handler

    def handler(event: Any, context: Any) -> None:
        configure()  # calls-configure

    try:
        findings = _run(guarded, handler)
    finally:
        logger.handlers.clear()
    [site] = {f.site for f in findings if f.noun == "logging handler" and f.site is not None}
    assert site.location == f"{HERE}:{line_of('adds-handler')}"
    assert site.called_from is not None
    assert site.called_from.startswith(f"{HERE}:{line_of('calls-configure')} in ")


def test_a_signal_handler_per_call_is_named_at_its_line(guarded) -> None:
    previous = signal.getsignal(signal.SIGUSR1)

    def handler(event: Any, context: Any) -> None:
        signal.signal(signal.SIGUSR1, lambda signum, frame: None)  # sets-signal

    try:
        findings = _run(guarded, handler)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert _site_of(findings, "signal handler") == f"{HERE}:{line_of('sets-signal')}"


def test_a_working_directory_per_call_is_named_at_its_line(guarded, tmp_path) -> None:
    where = os.getcwd()
    dirs = [tmp_path / "a", tmp_path / "b"]
    for path in dirs:
        path.mkdir()
    calls: list[int] = []

    def handler(event: Any, context: Any) -> None:
        calls.append(1)
        os.chdir(dirs[len(calls) % 2])  # changes-cwd

    try:
        findings = _run(guarded, handler, 4)
    finally:
        os.chdir(where)
    assert _site_of(findings, "working directory") == f"{HERE}:{line_of('changes-cwd')}"


def test_a_module_replaced_in_sys_modules_per_call_is_named_at_its_line(guarded) -> None:
    import csv
    import types

    # (not a module safehandler itself imports on first use, as json: see the README's
    # Fail open section)
    def handler(event: Any, context: Any) -> None:
        sys.modules["csv"] = types.ModuleType("csv")  # replaces-module

    try:
        findings = _run(guarded, handler)
    finally:
        sys.modules["csv"] = csv
    [noun] = {f.noun for f in findings if "module" in f.noun and f.noun != "module global"}
    assert _site_of(findings, noun) == f"{HERE}:{line_of('replaces-module')}"


def test_another_trace_function_is_called_throughout_and_put_back(guarded) -> None:
    seen: list[str] = []
    previous = sys.gettrace()

    def mine(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_name == "handler":
            seen.append(event)
        return mine

    def handler(event: Any, context: Any) -> None:
        GROWING.append(1)  # grows-traced

    sys.settrace(mine)
    try:
        findings = _run(guarded, handler, 4)
        assert sys.gettrace() is mine
    finally:
        sys.settrace(previous)
        GROWING.clear()
    assert _site_of(findings, "module global") == f"{HERE}:{line_of('grows-traced')}"
    assert seen.count("call") == 4  # every invocation, the traced ones included
    assert seen.count("line") >= 4


def test_in_production_a_change_made_once_has_no_line_and_leaves_no_tracing(guarded) -> None:
    done: list[int] = []

    def handler(event: Any, context: Any) -> None:
        if not done:
            done.append(1)
            os.environ["SAFEHANDLER_TEST_ONCE"] = "1"

    try:
        guard = guarded(handler)
        guard(6)
        [finding] = [f for f in guard.findings if f.noun == "environment variable"]
        assert finding.site is None
    finally:
        os.environ.pop("SAFEHANDLER_TEST_ONCE", None)


def _patch_once(done: list[int], tmp: str) -> None:
    """Every kind of shared state, changed in the first invocation only."""
    if done:
        return
    done.append(1)
    json.loads = functools.partial(json.loads)  # once-json
    builtins.safehandler_test_once = 1  # type: ignore[attr-defined]  # once-builtin
    os.environ["SAFEHANDLER_TEST_ONCE"] = "1"  # once-env
    sys.path.append("/nonexistent/safehandler-once")  # once-path
    logging.getLogger("safehandler.tests.once").addHandler(logging.NullHandler())  # once-log
    signal.signal(signal.SIGUSR2, lambda signum, frame: None)  # once-signal
    os.chdir(tmp)  # once-cwd


@pytest.fixture
def shared_state_kept(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(json, "loads", json.loads)
    monkeypatch.chdir(os.getcwd())
    previous = signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGUSR2, previous)
    os.environ.pop("SAFEHANDLER_TEST_ONCE", None)
    while "/nonexistent/safehandler-once" in sys.path:
        sys.path.remove("/nonexistent/safehandler-once")
    logging.getLogger("safehandler.tests.once").handlers.clear()
    if hasattr(builtins, "safehandler_test_once"):
        del builtins.safehandler_test_once


EXPECTED_ONCE = {
    "stdlib attribute": "once-json",
    "environment variable": "once-env",
    "sys.path entry": "once-path",
    "logging handler": "once-log",
    "signal handler": "once-signal",
    "working directory": "once-cwd",
}


def test_in_a_soak_a_change_made_once_is_named_at_its_line(shared_state_kept, tmp_path) -> None:
    from safehandler.testing import soak

    done: list[int] = []

    def handler(event: Any, context: Any) -> None:
        _patch_once(done, str(tmp_path))

    report = soak(handler, invocations=5)
    sites = {f.noun: f.site.location if f.site else None for f in report.findings}
    for noun, marker in EXPECTED_ONCE.items():
        assert sites.get(noun) == f"{HERE}:{line_of(marker)}", noun
    [builtin] = [n for n in sites if "builtin" in n]
    assert sites[builtin] == f"{HERE}:{line_of('once-builtin')}"


def test_in_strict_mode_the_error_names_the_line(shared_state_kept, tmp_path) -> None:
    import safehandler

    done: list[int] = []

    @safehandler.guard(mode="strict")
    def handler(event: Any, context: Any) -> None:
        _patch_once(done, str(tmp_path))

    with pytest.raises(safehandler.LeakError) as raised:
        handler({}, None)
    assert f"{HERE}:{line_of('once-json')}" in str(raised.value)
    assert f"{HERE}:{line_of('once-env')}" in str(raised.value)


def test_a_clean_handler_is_never_traced(guarded) -> None:
    traced: list[Any] = []

    def handler(event: Any, context: Any) -> dict[str, int]:
        traced.append(sys.gettrace())
        return {"ok": 1}

    before = sys.gettrace()
    guard = guarded(handler)
    guard(3)
    assert guard.findings == []
    assert traced == [before] * 3


def test_an_invocation_whose_end_is_never_seen_leaves_no_tracing() -> None:
    """A guard switched off between the start of an invocation and its end (its after() never
    runs) must not leave the witness tracing everything that follows."""
    import safehandler
    from safehandler import _scope
    from safehandler.guard import engine_of

    before = sys.gettrace()
    guarded = safehandler.guard(lambda event, context: None, mode="strict")
    engine = engine_of(guarded)
    assert engine is not None
    token = engine.before()  # strict: the first invocation is traced from here
    assert token is not None
    assert sys.gettrace() is not before
    _scope.abandon(token.opened)  # the end that never comes
    _helper_called_after()
    assert sys.gettrace() is before


def _helper_called_after() -> None:
    """User code that runs after the abandoned invocation: its call event stands the witness
    down."""


OWNED_APP = """
def handler(event, context, _seen=[]):
    _seen.append(event)  # grows-default
    return len(_seen)


def make():
    kept = []

    def inner(event, context):
        kept.append(event)  # grows-cell
        return len(kept)

    return inner


closure_handler = make()
"""


@pytest.mark.parametrize(
    ("function", "noun", "marker"),
    [
        ("handler", "mutable default", "grows-default"),
        ("closure_handler", "module global", "grows-cell"),
    ],
)
def test_what_a_function_holds_is_named_at_the_line_that_grew_it(
    guarded, tmp_path, monkeypatch: pytest.MonkeyPatch, function: str, noun: str, marker: str
) -> None:
    import importlib

    path = tmp_path / "sh_lines_owned_app.py"
    path.write_text(OWNED_APP, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        app = importlib.import_module("sh_lines_owned_app")
        findings = _run(guarded, getattr(app, function), 5)
    finally:
        sys.modules.pop("sh_lines_owned_app", None)
    sites = [f.site for f in findings if f.noun == noun and f.site is not None]
    assert sites, findings
    assert (sites[-1].filename, sites[-1].lineno) == (str(path), line_of(marker, path))

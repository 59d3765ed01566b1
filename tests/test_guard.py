"""The decorator: exact pass-through, Powertools stacking, one log line per report, fail open."""

from __future__ import annotations

import functools
import gc
import inspect
import io
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest
from aws_lambda_powertools import Logger
from hypothesis import given, settings

import safehandler
from safehandler._engine import Engine
from safehandler.guard import engine_of
from safehandler.policy import PROBE_NAMES
from safehandler.probes.fds import count_fds
from safehandler.testing import FakeLambdaContext
from safehandler.verdicts import LeakTracker

from . import strategies
from ._lines import line_of

HERE = os.path.relpath(__file__)
MODES = ("report", "strict", "off")
# Health thresholds no test machine reaches: a warning in these tests is about the test's subject.
# no recycle, and growth reported at its second invocation (the production span is tested in
# test_bounded)
CALM = {"fd_threshold": 1, "memory_limit_mb": 1_048_576, "leak_span": 1}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODE", "LEAK_AFTER", "PROBES", "FD_THRESHOLD", "MEMORY_LIMIT_MB"):
        monkeypatch.delenv(f"SAFEHANDLER_{name}", raising=False)


@pytest.fixture
def kept() -> Iterator[list[TextIO]]:
    """Where a leaking handler keeps its open files; all closed when the test ends."""
    files: list[TextIO] = []
    try:
        yield files
    finally:
        for file in files:
            file.close()


@pytest.fixture
def watch(caplog: pytest.LogCaptureFixture) -> Callable[[str], list[logging.LogRecord]]:
    """``watch(name)``: the records logged so far on the logger ``name``."""
    caplog.set_level(logging.WARNING)

    def records(name: str) -> list[logging.LogRecord]:
        return [record for record in caplog.records if record.name == name]

    return records


def context() -> FakeLambdaContext:
    return FakeLambdaContext(function_name="fn-under-test")


def powertools_logger() -> tuple[Logger, io.StringIO]:
    """A Powertools Logger writing JSON lines to a buffer (one service name per test)."""
    buffer = io.StringIO()
    logger = Logger(
        service=f"safehandler-test-{uuid.uuid4().hex}",
        logger_handler=logging.StreamHandler(buffer),
    )
    return logger, buffer


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


# -- the decorator's shape ------------------------------------------------------------


def test_bare_and_called_forms_both_guard_the_handler() -> None:
    @safehandler.guard
    def bare(event: Any, context: Any) -> str:
        return "bare"

    @safehandler.guard()
    def empty(event: Any, context: Any) -> str:
        return "empty"

    @safehandler.guard(mode="strict", leak_after=3)
    def configured(event: Any, context: Any) -> str:
        return "configured"

    for handler, result in ((bare, "bare"), (empty, "empty"), (configured, "configured")):
        engine = engine_of(handler)
        assert isinstance(engine, Engine)
        assert handler({}, context()) == result
        assert engine.invocation == 1
    assert engine_of(bare).policy == safehandler.Policy()  # type: ignore[union-attr]
    assert engine_of(configured).policy == safehandler.Policy(mode="strict", leak_after=3)  # type: ignore[union-attr]


def test_name_docstring_wrapped_and_signature_are_preserved() -> None:
    def app_handler(event: dict[str, Any], context: Any, retries: int = 3, *, dry: bool = False):
        """Handle one order."""
        return retries, dry

    for mode in MODES:
        guarded = safehandler.guard(app_handler, mode=mode)
        assert guarded.__name__ == "app_handler"
        assert guarded.__qualname__ == app_handler.__qualname__
        assert guarded.__module__ == __name__
        assert guarded.__doc__ == "Handle one order."
        assert guarded.__wrapped__ is app_handler  # type: ignore[attr-defined]
        assert inspect.signature(guarded) == inspect.signature(app_handler)
        assert str(inspect.signature(guarded)) == str(inspect.signature(app_handler))
        assert guarded is not app_handler
        assert not hasattr(app_handler, "__safehandler__")  # the handler itself is untouched


def test_event_context_and_extra_arguments_are_passed_through() -> None:
    seen: list[tuple[Any, ...]] = []

    def handler(event: Any, context: Any, *args: Any, **kwargs: Any) -> str:
        seen.append((event, context, args, kwargs))
        return "done"

    event, ctx, marker = {"id": 1}, context(), object()
    for mode in MODES:
        seen.clear()
        guarded = safehandler.guard(handler, mode=mode)
        assert guarded(event, ctx, 1, marker, flag=True, other=None) == "done"
        assert guarded(event=event, context=ctx) == "done"
        [(got_event, got_context, args, kwargs), second] = seen
        assert got_event is event
        assert got_context is ctx
        assert args == (1, marker)
        assert args[1] is marker
        assert kwargs == {"flag": True, "other": None}
        assert second[0] is event
        assert second[1] is ctx
        assert second[2:] == ((), {})


def test_guard_refuses_what_is_not_a_handler() -> None:
    with pytest.raises(safehandler.ConfigError, match=r"decorates a handler function, not 42$"):
        safehandler.guard(42)  # type: ignore[call-overload]


def test_applying_the_guard_does_not_leak_a_descriptor() -> None:
    """A leak detector must not leak: guarding, then dropping, handlers leaves no fd behind."""

    def handler(event: Any, context: Any) -> None:
        return None

    # The first guard of the process may open descriptors shared by all guards (statm).
    safehandler.guard(handler)({}, context())
    gc.collect()
    before = count_fds()
    for _ in range(20):
        safehandler.guard(handler)({}, context())
    gc.collect()
    assert count_fds() == before


# -- exact pass-through ---------------------------------------------------------------


def _echo(event: Any, context: Any) -> Any:
    return event["result"]


def _throw(event: Any, context: Any) -> Any:
    raise event["error"]


@functools.cache
def _passthrough(handler: Callable[..., Any], mode: str) -> Callable[..., Any]:
    # one guarded handler per mode for all examples: building an engine per example is slow
    return safehandler.guard(handler, mode=mode, **CALM)


def _frames(error: BaseException) -> list[Any]:
    tb, codes = error.__traceback__, []
    while tb is not None:
        codes.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    return codes


@settings(max_examples=150)
@given(result=strategies.handler_results())
def test_any_return_value_comes_back_identical(result: Any) -> None:
    for mode in MODES:
        guarded = _passthrough(_echo, mode)
        assert guarded({"result": result}, None) is result


@settings(max_examples=150)
@given(error=strategies.exceptions())
def test_any_exception_is_raised_as_the_same_object_with_the_handler_frame(
    error: BaseException,
) -> None:
    for mode in MODES:
        guarded = _passthrough(_throw, mode)
        with pytest.raises(BaseException) as excinfo:  # FakeKeyboardInterrupt and friends too
            guarded({"error": error}, None)
        assert excinfo.value is error
        assert type(excinfo.value) is type(error)
        assert _throw.__code__ in _frames(excinfo.value)


def test_off_mode_is_a_pure_pass_through(
    kept: list[TextIO], tmp_path: Path, watch: Callable[[str], list[logging.LogRecord]]
) -> None:
    calls: list[tuple[Any, ...]] = []

    def anything(*args: Any, **kwargs: Any) -> list[TextIO]:
        calls.append((args, kwargs))
        kept.append(open(tmp_path / "off.log", "a", encoding="utf-8"))
        return kept

    guarded = safehandler.guard(anything, mode="off", leak_after=1)
    engine = engine_of(guarded)
    assert engine is not None
    assert engine.active is False
    assert guarded() is kept  # no event/context required: the call is passed as it is
    for n in range(5):
        assert guarded(n, key=n) is kept
    assert calls == [((), {}), *(((n,), {"key": n}) for n in range(5))]
    assert len(kept) == 6
    assert (engine.invocation, engine.probes, engine.findings) == (0, {}, [])
    assert watch("safehandler") == []


# -- Powertools -----------------------------------------------------------------------


def test_stacks_under_powertools_inject_lambda_context() -> None:
    logger, buffer = powertools_logger()

    @logger.inject_lambda_context
    @safehandler.guard
    def handler(event: Any, context: Any) -> Any:
        logger.info("inside the handler", extra={"order": event["order"]})
        return event

    event = {"order": 17}
    assert handler(event, context()) is event
    [line] = json_lines(buffer)
    assert (line["message"], line["order"]) == ("inside the handler", 17)
    assert line["function_name"] == "fn-under-test"  # Powertools saw the context
    engine = engine_of(handler)
    assert isinstance(engine, Engine)
    assert engine.invocation == 1  # and the guard ran inside it


def test_stacks_over_powertools_inject_lambda_context() -> None:
    logger, buffer = powertools_logger()

    @safehandler.guard
    @logger.inject_lambda_context
    def handler(event: Any, context: Any) -> Any:
        logger.info("inside the handler", extra={"order": event["order"]})
        return event

    event = {"order": 18}
    assert handler(event, context()) is event
    assert handler(event, context()) is event
    lines = json_lines(buffer)
    assert [(line["message"], line["order"]) for line in lines] == [("inside the handler", 18)] * 2
    assert {line["function_name"] for line in lines} == {"fn-under-test"}
    engine = engine_of(handler)
    assert isinstance(engine, Engine)
    assert engine.invocation == 2


def test_engine_of_finds_nothing_on_an_unguarded_handler() -> None:
    logger, _ = powertools_logger()

    @logger.inject_lambda_context
    def handler(event: Any, context: Any) -> None:
        return None

    assert engine_of(handler) is None


def test_powertools_logger_gets_the_finding_as_structured_json(
    kept: list[TextIO], tmp_path: Path
) -> None:
    logger, buffer = powertools_logger()
    target = tmp_path / "pt.log"

    @logger.inject_lambda_context
    @safehandler.guard(logger=logger, **CALM)
    def handler(event: Any, context: Any) -> None:
        kept.append(open(target, "a", encoding="utf-8"))  # powertools-leak

    handler({}, context())
    handler({}, context())
    [line] = json_lines(buffer)
    assert line["level"] == "WARNING"
    assert line["function_name"] == "fn-under-test"
    finding = line["safehandler"]
    assert finding["event"] == "safehandler.leak"
    assert (finding["kind"], finding["count"]) == ("fd", 2)
    assert finding["site"] == f"{HERE}:{line_of('powertools-leak')}"
    assert finding["function"] == "handler"
    assert (finding["first_invocation"], finding["invocation"]) == (1, 2)
    assert line["message"].startswith(f"safehandler: 2 files open on {os.path.realpath(target)}")


# -- stdlib logging: one JSON line per report -----------------------------------------


@pytest.mark.parametrize("logger_name", [None, "tests.app"])
def test_stdlib_logger_gets_one_json_line_per_report_not_per_invocation(
    kept: list[TextIO],
    tmp_path: Path,
    watch: Callable[[str], list[logging.LogRecord]],
    logger_name: str | None,
) -> None:
    logger = logging.getLogger(logger_name) if logger_name else None
    target = tmp_path / "std.log"

    @safehandler.guard(logger=logger, **CALM)
    def handler(event: Any, context: Any) -> str:
        kept.append(open(target, "a", encoding="utf-8"))  # stdlib-leak
        return "ok"

    assert [handler({}, context()) for _ in range(3)] == ["ok"] * 3
    [record] = watch(logger_name or "safehandler")
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert "\n" not in text
    payload = json.loads(text)
    assert payload["message"].startswith("safehandler: 2 files open on ")
    finding = payload["safehandler"]
    assert (finding["event"], finding["kind"], finding["count"]) == ("safehandler.leak", "fd", 2)
    assert finding["site"] == f"{HERE}:{line_of('stdlib-leak')}"
    assert (finding["first_invocation"], finding["invocation"]) == (1, 2)

    handler({}, context())  # the count doubled: reported again
    records = watch(logger_name or "safehandler")
    assert len(records) == 2
    again = json.loads(records[1].getMessage())["safehandler"]
    assert (again["count"], again["invocation"]) == (4, 4)


# -- strict ---------------------------------------------------------------------------


def test_strict_raises_unclosed_fd_error_naming_the_line(
    kept: list[TextIO], tmp_path: Path, watch: Callable[[str], list[logging.LogRecord]]
) -> None:
    @safehandler.guard(mode="strict", **CALM)
    def handler(event: Any, context: Any) -> str:
        kept.append(open(tmp_path / "strict.log", "a", encoding="utf-8"))  # strict-leak
        return "ok"

    assert handler({}, context()) == "ok"  # retained once: could be a lazy cache
    with pytest.raises(safehandler.UnclosedFdError) as excinfo:
        handler({}, context())
    error = excinfo.value
    assert isinstance(error, AssertionError)
    assert isinstance(error, safehandler.LeakError)
    [finding] = error.findings
    assert (finding.kind, finding.noun, finding.count) == ("fd", "file", 2)
    assert finding.site is not None
    expected = f"{HERE}:{line_of('strict-leak')}"
    assert finding.site.location == expected
    assert f"created at {expected} in handler" in str(error)
    assert len(kept) == 2  # the handler ran to its end both times
    assert watch("safehandler") == []  # strict raises instead of logging


def test_strict_never_replaces_the_handlers_own_exception(
    kept: list[TextIO], tmp_path: Path, watch: Callable[[str], list[logging.LogRecord]]
) -> None:
    errors: list[ValueError] = []

    @safehandler.guard(mode="strict", **CALM)
    def handler(event: Any, context: Any) -> None:
        kept.append(open(tmp_path / "strict.log", "a", encoding="utf-8"))
        errors.append(ValueError(f"bad order {len(kept)}"))
        raise errors[-1]

    for n in (1, 2, 3):
        with pytest.raises(ValueError, match=f"^bad order {n}$") as excinfo:
            handler({}, context())
        assert excinfo.value is errors[-1]
        assert not isinstance(excinfo.value, safehandler.LeakError)
    engine = engine_of(handler)
    assert engine is not None
    # found at invocation 2, and (strict) again at every invocation that grows it ...
    assert [(f.kind, f.count, f.invocation) for f in engine.findings] == [
        ("fd", 2, 2),
        ("fd", 3, 3),
    ]
    # ... and logged, since it could not be raised over the handler's own error
    counts = [json.loads(r.getMessage())["safehandler"]["count"] for r in watch("safehandler")]
    assert counts == [2, 3]


# -- fail open ------------------------------------------------------------------------

RESULT = strategies.SENTINEL


def _returns_sentinel(event: Any, context: Any) -> Any:
    # Opening a file (and closing it) is a creation: every probe's diff() runs, not only
    # the snapshots of the cheap path.
    with open(__file__, encoding="utf-8"):
        pass
    return RESULT


# Every probe has a snapshot; memory has no diff (it is judged as a trend of snapshots).
BREAKABLE = [(name, "snapshot") for name in PROBE_NAMES] + [
    (name, "diff") for name in PROBE_NAMES if name != "memory"
]


@pytest.mark.parametrize(("probe", "method"), BREAKABLE)
def test_a_failing_probe_is_switched_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
    watch: Callable[[str], list[logging.LogRecord]],
    probe: str,
    method: str,
) -> None:
    handler = safehandler.guard(_returns_sentinel, **CALM)
    engine = engine_of(handler)
    assert engine is not None
    assert handler({}, context()) is RESULT  # a healthy first call: baseline taken

    def broken(*args: Any) -> Any:
        raise RuntimeError(f"{probe}.{method} is broken")

    monkeypatch.setattr(engine.probes[probe], method, broken)
    assert handler({}, context()) is RESULT
    [record] = watch("safehandler")
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"the {probe} probe failed and is now off" in message
    assert f"RuntimeError('{probe}.{method} is broken')" in message
    # ("processes" comes with the threads probe: what keeps running)
    assert set(engine.probes) == (set(PROBE_NAMES) | {"processes"}) - {probe}

    for _ in range(3):
        assert handler({}, context()) is RESULT
    assert len(watch("safehandler")) == 1
    assert engine.invocation == 5


def test_a_failing_probe_never_changes_what_the_handler_raises(
    monkeypatch: pytest.MonkeyPatch, watch: Callable[[str], list[logging.LogRecord]]
) -> None:
    error = KeyError("missing")

    def handler(event: Any, context: Any) -> None:
        with open(__file__, encoding="utf-8"):
            pass
        raise error

    guarded = safehandler.guard(handler, mode="strict", **CALM)
    engine = engine_of(guarded)
    assert engine is not None

    def broken(*args: Any) -> Any:
        raise RuntimeError("diff is broken")

    monkeypatch.setattr(engine.probes["fds"], "diff", broken)
    with pytest.raises(KeyError) as excinfo:
        guarded({}, context())
    assert excinfo.value is error
    assert "fds" not in engine.probes
    assert len(watch("safehandler")) == 1


@pytest.mark.parametrize("mode", ["report", "strict"])
def test_an_exploding_engine_does_not_change_the_result(
    monkeypatch: pytest.MonkeyPatch,
    watch: Callable[[str], list[logging.LogRecord]],
    mode: str,
) -> None:
    handler = safehandler.guard(_returns_sentinel, mode=mode, **CALM)
    engine = engine_of(handler)
    assert engine is not None

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(engine, "_after", explode)
    assert handler({}, context()) is RESULT
    [record] = watch("safehandler")
    assert "internal error, probes are now off: RuntimeError('engine exploded')" in (
        record.getMessage()
    )
    assert engine.probes == {}
    assert handler({}, context()) is RESULT


def test_an_exploding_engine_does_not_change_what_the_handler_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error = strategies.FakeKeyboardInterrupt("stop")

    def handler(event: Any, context: Any) -> None:
        raise error

    guarded = safehandler.guard(handler, **CALM)
    engine = engine_of(guarded)
    assert engine is not None

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(engine, "_after", explode)
    with pytest.raises(strategies.FakeKeyboardInterrupt) as excinfo:
        guarded({}, context())
    assert excinfo.value is error


def test_an_internal_error_before_the_call_does_not_stop_the_handler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The tracker fails while the fd probe catches up with a file closed between calls."""
    calls: list[int] = []
    files: list[TextIO] = []

    def handler(event: Any, context: Any) -> Any:
        calls.append(len(calls))
        if not files:
            files.append(open(tmp_path / "cache.db", "a", encoding="utf-8"))
        return RESULT

    guarded = safehandler.guard(handler, **CALM)
    engine = engine_of(guarded)
    assert engine is not None
    try:
        assert guarded({}, context()) is RESULT
    finally:
        files[0].close()  # between invocations: the fd probe notices before the next call

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracker exploded")

    monkeypatch.setattr(LeakTracker, "observe", explode)
    assert guarded({}, context()) is RESULT
    assert calls == [0, 1]

"""The guard accepts exactly the call shapes the handler accepts, and says so when it cannot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import safehandler
from safehandler.guard import engine_of
from safehandler.testing import FakeLambdaContext

from ._lines import line_of

HERE = __file__


def test_a_handler_with_a_default_context_is_called_with_the_event_alone() -> None:
    def handler(event: Any, context: Any = None) -> Any:
        return (event, context)

    assert safehandler.guard(handler)({"a": 1}) == ({"a": 1}, None)


def test_keyword_only_and_extra_arguments_pass_through() -> None:
    def handler(event: Any, context: Any, *extra: Any, flag: bool = False) -> Any:
        return (event, extra, flag)

    guarded = safehandler.guard(handler)
    assert guarded({}, None, 1, 2, flag=True) == ({}, (1, 2), True)
    assert guarded(event={}, context=None) == ({}, (), False)


def test_a_wrong_call_raises_the_handlers_own_type_error() -> None:
    def handler(event: Any, context: Any) -> Any:
        return event

    with pytest.raises(TypeError) as guarded_error:
        safehandler.guard(handler)()
    with pytest.raises(TypeError) as plain_error:
        handler()  # type: ignore[call-arg]
    assert str(guarded_error.value) == str(plain_error.value)


def test_an_async_handler_is_guarded_around_the_await(tmp_path: Path) -> None:
    kept: list[Any] = []

    async def handler(event: Any, context: Any) -> str:
        await asyncio.sleep(0)
        kept.append(open(tmp_path / "async.log", "a", encoding="utf-8"))  # async-leak
        await asyncio.sleep(0)
        return "done"

    guarded = safehandler.guard(handler, mode="report", shared_state_every=1, leak_span=1)
    engine = engine_of(guarded)
    assert engine is not None
    found: list[Any] = []
    try:
        with engine.observe(lambda invocation: found.extend(invocation.findings), quiet=True):
            for _ in range(2):
                assert asyncio.run(guarded({}, FakeLambdaContext())) == "done"
        [finding] = [f for f in found if f.kind == "fd"]
        assert (finding.count, finding.invocation) == (2, 2)
        assert finding.site is not None
        assert finding.site.lineno == line_of("async-leak")
        assert asyncio.iscoroutinefunction(guarded)
    finally:
        for item in kept:
            item.close()


def test_concurrent_async_invocations_are_judged_apart(tmp_path: Path) -> None:
    """Two tasks in one loop, each its own scope: one leaks, the other does not."""

    kept: list[Any] = []

    async def handler(event: Any, context: Any) -> None:
        await asyncio.sleep(0.01)
        if event["leak"]:
            kept.append(open(tmp_path / f"{event['n']}.log", "a", encoding="utf-8"))
        await asyncio.sleep(0.01)

    guarded = safehandler.guard(handler, mode="strict", leak_after=1)

    async def both() -> list[Any]:
        return await asyncio.gather(
            guarded({"leak": True, "n": 1}, None),
            guarded({"leak": False, "n": 2}, None),
            return_exceptions=True,
        )

    try:
        leaky, clean = asyncio.run(both())
        assert isinstance(leaky, safehandler.UnclosedFdError)
        [finding] = leaky.findings
        assert finding.detail == f"open on {tmp_path / '1.log'}"
        assert clean is None  # the other task's open file is not its doing
    finally:
        for item in kept:
            item.close()


def test_a_generator_handler_is_a_config_error() -> None:
    def handler(event: Any, context: Any) -> Iterator[int]:
        yield 1

    with pytest.raises(safehandler.ConfigError, match="generator function"):
        safehandler.guard(handler)

    async def async_generator(event: Any, context: Any) -> Any:
        yield 1

    with pytest.raises(safehandler.ConfigError, match="generator function"):
        safehandler.guard(async_generator)


def test_a_bound_method_and_a_callable_object_are_guarded() -> None:
    class App:
        def handle(self, event: Any, context: Any) -> str:
            return "method"

        def __call__(self, event: Any, context: Any) -> str:
            return "call"

    app = App()
    assert safehandler.guard(app.handle)({}, None) == "method"
    assert safehandler.guard(app)({}, None) == "call"


# -- settings ---------------------------------------------------------------------------


@pytest.fixture
def warnings_of_safehandler(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.WARNING, logger="safehandler")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "safehandler"]


def test_an_unknown_variable_is_one_warning_naming_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, warnings_of_safehandler: Callable[[], list[str]]
) -> None:
    monkeypatch.setenv("SAFEHANDLER_FD_TRESHOLD", "0.3")
    monkeypatch.setenv("SAFEHANDLER_NOT_A_THING_AT_ALL", "1")
    from safehandler import policy

    monkeypatch.setattr(policy, "_warned", set())
    for _ in range(3):
        safehandler.guard(lambda event, context: None)
    assert warnings_of_safehandler() == [
        "safehandler: SAFEHANDLER_FD_TRESHOLD is not a setting and is ignored; did you mean "
        "SAFEHANDLER_FD_THRESHOLD?",
        "safehandler: SAFEHANDLER_NOT_A_THING_AT_ALL is not a setting and is ignored",
    ]


def test_an_empty_probe_list_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEHANDLER_PROBES", "")
    with pytest.raises(safehandler.ConfigError, match=r"SAFEHANDLER_PROBES='': must be"):
        safehandler.guard(lambda event, context: None)
    monkeypatch.delenv("SAFEHANDLER_PROBES")
    with pytest.raises(safehandler.ConfigError, match=r"probes=frozenset\(\)"):
        safehandler.guard(probes=[])

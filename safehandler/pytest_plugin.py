"""The pytest plugin: a ``soak`` marker and fixture over ``safehandler.testing``.

    @pytest.mark.soak(invocations=1500)
    def test_handler_does_not_leak():
        return app.handler          # or @pytest.mark.soak(handler="app:handler")

    def test_with_the_fixture(soak):
        report = soak(app.handler, events="events/")
        assert report.invocations == 1500

A leak fails the test with the findings and their creation sites; failed soaks are also listed
in a terminal summary section (collected from test reports, so it works under pytest-xdist).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._redact import redact_text
from .testing import (
    DEFAULT_INVOCATIONS,
    DEFAULT_TIMEOUT,
    LAMBDA_FD_LIMIT,
    SoakReport,
    TargetError,
    load_handler,
    soak,
    soak_isolated,
    soak_policy,
)

_PROPERTY = "safehandler_soak"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("safehandler", "safehandler soak tests")
    group.addoption(
        "--soak-invocations",
        type=int,
        default=None,
        help=f"invocations per soak (ini: soak_invocations; default {DEFAULT_INVOCATIONS})",
    )
    parser.addini(
        "soak_invocations", "invocations per soak", type="int", default=DEFAULT_INVOCATIONS
    )
    group.addoption(
        "--soak-isolate",
        action="store_true",
        default=None,
        help="soak in a child process under Lambda's limits (ini: soak_isolate)",
    )
    parser.addini("soak_isolate", "soak in a child process", type="bool", default=False)
    group.addoption(
        "--soak-fd-limit",
        type=int,
        default=None,
        help=f"RLIMIT_NOFILE for isolated soaks (ini: soak_fd_limit; default {LAMBDA_FD_LIMIT})",
    )
    parser.addini(
        "soak_fd_limit", "RLIMIT_NOFILE for isolated soaks", type="int", default=LAMBDA_FD_LIMIT
    )
    group.addoption("--soak-seed", type=int, default=None, help="shuffle events with this seed")
    parser.addini("soak_seed", "shuffle events with this seed", type="string", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "soak(invocations=None, events=None, isolate=None, handler=None, **settings): run the "
        "handler the test returns (or names) many times and fail on any leak",
    )
    config.pluginmanager.register(_Summary(), "safehandler-soak-summary")


def _setting(config: pytest.Config, name: str) -> Any:
    value = config.getoption("soak_" + name)
    return config.getini("soak_" + name) if value is None else value


class _Runner:
    """Runs soaks with the session's options; one per test (the ``soak`` fixture)."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        config = item.config
        self.invocations = int(_setting(config, "invocations"))
        self.isolate = bool(_setting(config, "isolate"))
        self.fd_limit = int(_setting(config, "fd_limit"))
        seed = _setting(config, "seed")
        self.seed = int(seed) if seed not in (None, "") else None

    def __call__(
        self,
        handler: Callable[..., Any] | str,
        *,
        invocations: int | None = None,
        events: Any = None,
        isolate: bool | None = None,
        check: bool = True,
        release: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        fail_fast: bool = False,
        max_seconds: float | None = None,
        **settings: Any,
    ) -> SoakReport:
        count = self.invocations if invocations is None else invocations
        with _redacted_target_error():
            if isolate if isolate is not None else self.isolate:
                report = soak_isolated(
                    handler,
                    invocations=count,
                    events=events,
                    fd_limit=self.fd_limit,
                    seed=self.seed,
                    timeout=timeout,
                    fail_fast=fail_fast,
                    max_seconds=max_seconds,
                    **settings,
                )
            else:
                policy = soak_policy(**settings)  # a bad setting fails before the handler loads
                target = load_handler(handler) if isinstance(handler, str) else handler
                report = soak(
                    target,
                    events=events,
                    invocations=count,
                    policy=policy,
                    name=handler if isinstance(handler, str) else None,
                    seed=self.seed,
                    release=release,
                    timeout=timeout,
                    fail_fast=fail_fast,
                    max_seconds=max_seconds,
                )
        if check and not report.clean:
            self.item.user_properties.append((_PROPERTY, json.dumps(_summary(report))))
            pytest.fail(str(report), pytrace=False)  # (SoakReport's text is redacted)
        return report


@contextlib.contextmanager
def _redacted_target_error() -> Iterator[None]:
    """A handler that cannot be loaded: its text may quote the handler's own error, redacted,
    and without the cause, which pytest would print as it is."""
    try:
        yield
    except TargetError as exc:
        raise TargetError(redact_text(str(exc))) from None


def _summary(report: SoakReport) -> dict[str, Any]:
    return {
        "handler": redact_text(report.handler),
        "verdict": report.verdict,
        "findings": [redact_text(f"[{finding.kind}] {finding}") for finding in report.findings]
        + _failing_lines(report),
    }


def _failing_lines(report: SoakReport) -> list[str]:
    first = report.failures.first
    if first is None:
        return []
    evolution = report.failures.evolution(report.invocations)
    line = f"[failing] first at invocation {first.invocation:,} ({first}); {evolution}"
    return [redact_text(line)]


@pytest.fixture(name="soak")
def soak_fixture(request: pytest.FixtureRequest) -> _Runner:
    """``soak(handler, invocations=..., events=..., isolate=..., check=True, **settings)``."""
    return _Runner(request.node)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("soak")
    if marker is None:
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    returned = pyfuncitem.obj(**arguments)
    options = dict(marker.kwargs)
    here = Path(pyfuncitem.path).parent
    if isinstance(options.get("events"), (str, os.PathLike)):
        options["events"] = here / options["events"]  # relative to the test file
    handler = _beside(here, options.pop("handler", None)) or returned
    if handler is None:
        pytest.fail(
            "@pytest.mark.soak: return the handler from the test, or name it with "
            "handler='module:function'",
            pytrace=False,
        )
    _Runner(pyfuncitem)(handler, **options)
    return True


def _beside(here: Path, handler: Any) -> Any:
    """A marker's ``handler="path/to/file.py:function"``, relative to the test file."""
    if not isinstance(handler, str) or ":" not in handler:
        return handler
    module_part, _, attribute = handler.rpartition(":")
    if module_part.endswith(".py") and not os.path.isabs(module_part):
        return f"{here / module_part}:{attribute}"
    return handler


class _Summary:
    """Failed soaks, gathered from test reports (which pytest-xdist sends to the controller)."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, dict[str, Any]]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == _PROPERTY and isinstance(value, str):
                summary = json.loads(value)
                if summary["verdict"] != "clean":
                    self.failed.append((report.nodeid, summary))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.failed:
            return
        terminalreporter.section("safehandler soak")
        for nodeid, summary in self.failed:
            # redacted again: a worker of another version may have sent the summary
            terminalreporter.write_line(redact_text(f"{nodeid}: {summary['handler']}"))
            for line in summary["findings"]:
                terminalreporter.write_line(redact_text(f"  {line}"))

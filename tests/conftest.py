from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import safehandler
from safehandler._engine import Invocation
from safehandler._records import Finding
from safehandler.guard import engine_of
from safehandler.testing import FakeLambdaContext

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True, scope="session")
def _health_state_of_the_suite(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The suite's guarded handlers (and their subprocesses) keep their health state in a
    directory of the run's own, never at the production default /tmp/safehandler-health.*"""
    if "SAFEHANDLER_HEALTH_FILE" not in os.environ:
        base = tmp_path_factory.mktemp("health") / "safehandler-health.json"
        os.environ["SAFEHANDLER_HEALTH_FILE"] = str(base)


# The first draw of st.characters() builds Hypothesis's Unicode table (about a second on a
# fresh checkout, more on Python 3.10): the slow-generation check would fail on it, not on us.
settings.register_profile("safehandler", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("safehandler")


class Guarded:
    """A guarded handler, the findings its engine reported, and a way to call it n times."""

    def __init__(self, handler: Callable[..., Any], **settings: Any) -> None:
        self.handler = safehandler.guard(handler, **settings)
        self.engine = engine_of(self.handler)
        assert self.engine is not None
        self.findings: list[Finding] = []
        # collected instead of logged, for the life of the test process (the handler's too)
        self._observing = self.engine.observe(self._collect, quiet=True)
        self._observing.__enter__()

    def _collect(self, invocation: Invocation) -> None:
        self.findings.extend(invocation.findings)

    def __call__(self, times: int = 1, event: Any = None) -> list[Any]:
        return [self.handler(event or {}, FakeLambdaContext()) for _ in range(times)]


@pytest.fixture
def guarded() -> Callable[..., Guarded]:
    """Guard a handler in report mode with findings collected instead of logged.

    The shared state is checked whole after every invocation (``shared_state_every=1``), and
    growth is reported as soon as ``leak_after`` says (``leak_span=1``), so that a test can say
    at which invocation a change is reported; tests of the rotation and of the span set them
    themselves.
    """

    def make(handler: Callable[..., Any], **settings: Any) -> Guarded:
        settings.setdefault("mode", "report")
        settings.setdefault("shared_state_every", 1)
        settings.setdefault("leak_span", 1)
        return Guarded(handler, **settings)

    return make

"""Isolation works for everything the in-process soak accepts: every kind of event, every kind
of handler, every setting (pytester: each soak in a child of the test's own process)."""

from __future__ import annotations

import pytest

APP = """
import json

from aws_lambda_powertools import Logger
from fastapi import FastAPI
from mangum import Mangum

import safehandler

KEPT = []


def leaks(event, context):
    KEPT.append(open(__file__))
    return {"statusCode": 200}


def fails_when_asked(event, context):
    return {"statusCode": 500 if event.get("fail") else 200}


api = FastAPI()


@api.get("/orders")
async def orders():
    return {"orders": []}


mangum_handler = Mangum(api, lifespan="off")

logger = Logger(service="orders")


@logger.inject_lambda_context
@safehandler.guard(logger=logger)
def powertools_handler(event, context):
    KEPT.append(open(__file__))  # leak-here
    return {"statusCode": 200}
"""

HTTP_EVENT = {
    "version": "2.0",
    "routeKey": "GET /orders",
    "rawPath": "/orders",
    "rawQueryString": "",
    "headers": {"host": "api.example.com"},
    "isBase64Encoded": False,
    "requestContext": {
        "http": {"method": "GET", "path": "/orders", "sourceIp": "192.0.2.1"},
        "stage": "$default",
    },
}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(app=APP)
    pytester.syspathinsert()
    (pytester.path / "events").mkdir()
    for n, fail in enumerate([False, True, False]):
        (pytester.path / "events" / f"e{n}.json").write_text(f'{{"fail": {str(fail).lower()}}}')
    return pytester


EVENT_KINDS = """
import itertools

import pytest
from hypothesis import strategies as st

import app

KINDS = {
    "one event": ({"fail": True}, 30),
    "a list": ([{"fail": False}, {"fail": True}, {"fail": False}], 10),
    "a file": ("events/e1.json", 30),
    "a directory": ("events", 10),
    "a callable": (lambda: {"fail": True}, 30),
    "an iterator": (iter([{"fail": True}] * 5 + [{"fail": False}] * 25), 5),
    "a strategy": (st.fixed_dictionaries({"fail": st.just(True)}), 30),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_events(soak, kind):
    events, failed = KINDS[kind]
    report = soak(app.fails_when_asked, events=events, invocations=30, check=False)
    assert (report.invocations, report.failed) == (30, failed)
    assert report.verdict == "failing"
"""


def test_every_kind_of_event_reaches_the_child(project: pytest.Pytester) -> None:
    project.makepyfile(test_events=EVENT_KINDS)
    project.runpytest_subprocess("--soak-isolate").assert_outcomes(passed=7)
    project.runpytest_subprocess().assert_outcomes(passed=7)  # the same, in-process


def test_an_asgi_adapter_instance_and_a_powertools_handler(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_handlers=f"""
        import os

        import app

        EVENT = {HTTP_EVENT!r}


        def test_mangum(soak):
            report = soak(app.mangum_handler, events=EVENT, invocations=20, isolate=True)
            assert (report.verdict, report.failed, report.invocations) == ("clean", 0, 20)
            assert report.handler == "mangum.adapter:Mangum"


        def test_powertools(soak):
            report = soak(app.powertools_handler, invocations=20, isolate=True, check=False)
            [finding] = [f for f in report.findings if f.kind == "fd"]  # by its own guard
            assert finding.count >= 2
            lines = open(app.__file__).read().splitlines()
            line = next(n for n, text in enumerate(lines, 1) if text.endswith("# leak-here"))
            assert finding.site.location == f"app.py:{{line}}"
            assert report.fd_limit == 1024  # in a child, under Lambda's limit
        """
    )
    project.runpytest_subprocess().assert_outcomes(passed=2)


def test_a_handler_importable_only_through_the_tests_sys_path(pytester: pytest.Pytester) -> None:
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "hidden_app.py").write_text(
        "def handler(event, context):\n    return {'statusCode': 200}\n"
    )
    pytester.makeconftest(
        """
        import pathlib, sys

        sys.path.insert(0, str(pathlib.Path(__file__).parent / "src"))
        """
    )
    pytester.makepyfile(
        test_hidden="""
        import pytest

        import hidden_app


        def test_by_object(soak):
            assert soak(hidden_app.handler, invocations=10, isolate=True).clean


        @pytest.mark.soak(invocations=10, isolate=True, handler="hidden_app:handler")
        def test_by_name():
            pass
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_settings_are_checked_before_a_child_starts(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_settings="""
        import pytest

        import app
        from safehandler.errors import ConfigError


        @pytest.mark.parametrize("isolate", [True, False])
        def test_bogus_mode(soak, isolate):
            with pytest.raises(ConfigError, match="mode='bogus': must be report, strict or off"):
                soak(app.fails_when_asked, isolate=isolate, mode="bogus")


        @pytest.mark.parametrize("isolate", [True, False])
        def test_no_invocations(soak, isolate):
            with pytest.raises(ConfigError, match="invocations=0: must be a whole number"):
                soak(app.fails_when_asked, isolate=isolate, invocations=0)


        @pytest.mark.parametrize("isolate", [True, False])
        def test_a_setting_reaches_the_child(soak, isolate):
            report = soak(app.leaks, invocations=5, isolate=isolate, check=False)
            assert sorted(f.kind for f in report.findings) == ["fd", "global"]
            allowed = soak(app.leaks, invocations=5, isolate=isolate, check=False,
                           allow_globals=["app.KEPT"])
            assert [f.kind for f in allowed.findings] == ["fd"]


        def test_a_lambda_cannot_be_sent(soak):
            from safehandler.errors import TargetError

            with pytest.raises(TargetError, match="cannot be sent to a child process"):
                soak(lambda event, context: None, isolate=True)


        @pytest.mark.soak(invocations=0, handler="app:fails_when_asked")
        def test_marker_with_no_invocations():
            pass
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*invocations=0: must be a whole number of at least 1*"])

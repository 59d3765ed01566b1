"""The pytest plugin, driven through pytester in subprocesses (leaks stay in the child)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from safehandler.testing._limits import fd_limited

from ._cli import env, workdir

HANDLERS = """
import threading

KEPT = []
STOP = threading.Event()


def leaky(event, context):
    KEPT.append(open(__file__))  # leak-here
    return 1


def clean(event, context):
    with open(__file__) as source:
        source.readline()
    return 1


def leaks_when_it_raises(event, context):
    handle = open(__file__)
    if event.get("fail"):
        KEPT.append(handle)
        raise KeyError("order")
    handle.close()
    return 1
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(handlers=HANDLERS)
    pytester.syspathinsert()
    return pytester


@pytest.fixture(params=["in-process", "isolated"])
def mode(request: pytest.FixtureRequest) -> list[str]:
    """The plugin's options for this run: none, or every soak isolated."""
    return ["--soak-isolate"] if request.param == "isolated" else []


def leak_line(pytester: pytest.Pytester) -> int:
    source = (pytester.path / "handlers.py").read_text().splitlines()
    return next(n for n, line in enumerate(source, 1) if line.endswith("# leak-here"))


def test_marker_fails_a_leaking_handler_with_its_site(
    project: pytest.Pytester, mode: list[str]
) -> None:
    project.makepyfile(
        test_it="""
        import pytest
        import handlers

        @pytest.mark.soak(invocations=30)
        def test_leaky():
            return handlers.leaky
        """
    )
    result = project.runpytest_subprocess(*mode)
    result.assert_outcomes(failed=1)
    line = leak_line(project)
    result.stdout.fnmatch_lines(
        [
            "*verdict: LEAK, 2 findings*",
            f"*[[]fd[]] 30 files open on *handlers.py created at handlers.py:{line} in leaky*",
            "*[[]global[]] handlers.KEPT grew: 1 -> 30 items since invocation 1 (module global,*",
            "*= safehandler soak =*",
            "test_it.py::test_leaky: *",
        ]
    )


def test_marker_passes_a_clean_handler_named_by_string(
    project: pytest.Pytester, mode: list[str]
) -> None:
    project.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.soak(invocations=200, handler="handlers:clean")
        def test_clean():
            pass
        """
    )
    result = project.runpytest_subprocess("-W", "error", *mode)
    result.assert_outcomes(passed=1)
    assert "safehandler soak" not in result.stdout.str()


def test_marker_without_a_handler_says_how_to_give_one(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.soak
        def test_nothing():
            pass
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*return the handler from the test, or name it*"])


def test_fixture_returns_the_report(project: pytest.Pytester, mode: list[str]) -> None:
    project.makepyfile(
        test_it="""
        import handlers

        def test_clean(soak):
            report = soak(handlers.clean, invocations=50)
            assert (report.verdict, report.invocations, report.errors) == ("clean", 50, 0)

        def test_leaky_unchecked(soak):
            report = soak(handlers.leaky, invocations=20, check=False)
            [finding, kept] = report.findings
            assert (kept.kind, kept.noun) == ("global", "module global")
            assert (finding.kind, finding.count, finding.invocation) == ("fd", 20, 2)
        """
    )
    project.runpytest_subprocess(*mode).assert_outcomes(passed=2)


def test_leak_only_on_the_raising_path_names_the_error(
    project: pytest.Pytester, mode: list[str]
) -> None:
    project.makepyfile(
        test_it="""
        import handlers

        def test_paths(soak):
            events = [{"fail": False}, {"fail": True}, {"fail": False}]
            report = soak(handlers.leaks_when_it_raises, events=events, invocations=30,
                          check=False)
            [finding, kept] = report.findings
            assert kept.detail == "handlers.KEPT grew: 0 -> 10 items since invocation 2"
            assert finding.count == 10
            assert finding.extra["path"] == (
                "only in invocations that raised KeyError (events: #1)"
            )
            assert report.error_types == {"KeyError": 10}
        """
    )
    project.runpytest_subprocess(*mode).assert_outcomes(passed=1)


def test_option_and_ini_set_the_invocations(project: pytest.Pytester, mode: list[str]) -> None:
    project.makepyfile(
        test_it="""
        import handlers

        def test_count(soak, request):
            report = soak(handlers.clean)
            assert report.invocations == int(request.config.getoption("soak_invocations") or 40)
        """
    )
    project.makeini("[pytest]\nsoak_invocations = 40\n")
    project.runpytest_subprocess(*mode).assert_outcomes(passed=1)
    project.runpytest_subprocess("--soak-invocations", "60", *mode).assert_outcomes(passed=1)


def test_isolated_soak_hits_emfile_under_the_fd_limit(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_it="""
        import handlers

        def test_isolated(soak):
            report = soak(handlers.leaky, invocations=300, isolate=True, check=False)
            assert report.fd_limit == 128
            assert 100 < report.fd_exhausted_at < 128
            assert report.error_types["OSError[EMFILE]"] == 300 - report.fd_exhausted_at + 1
        """
    )
    project.runpytest_subprocess("--soak-fd-limit", "128").assert_outcomes(passed=1)


def test_summary_works_under_xdist(project: pytest.Pytester, mode: list[str]) -> None:
    project.makepyfile(
        test_it="""
        import pytest
        import handlers

        @pytest.mark.soak(invocations=10)
        def test_leaky():
            return handlers.leaky

        @pytest.mark.soak(invocations=10)
        def test_clean():
            return handlers.clean
        """
    )
    result = project.runpytest_subprocess("-n", "2", "-p", "xdist", *mode)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*= safehandler soak =*", "test_it.py::test_leaky: *"])


@pytest.mark.parametrize("where", ["examples", "the project root"])
def test_the_readme_example_runs_as_documented_under_ulimit_1024(
    where: str, tmp_path: Path
) -> None:
    """`cd examples && pytest test_soak.py`, and `pytest examples/test_soak.py` from the
    project root, under the common `ulimit -n 1024` (Lambda's limit): the in-process soak of
    the leaking example runs out of fds, and what it leaked is released for the next test."""
    project = workdir(tmp_path)
    cwd, path = (project / "examples", "test_soak.py")
    if where == "the project root":
        cwd, path = (project, "examples/test_soak.py")
    argv = [sys.executable, "-m", "pytest", path, "-p", "no:cacheprovider", "-p", "no:randomly"]
    proc = subprocess.run(
        fd_limited(argv, 1024),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env(tmp_path),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "1 failed, 2 passed" in out
    assert "FAILED examples/test_soak.py::test_leaky_handler_fails" in out or (
        "FAILED test_soak.py::test_leaky_handler_fails" in out
    )
    assert "EMFILE at invocation 1,0" in out  # it really ran out, then released
    assert "created at leaky_sqlite.py:17 in handler" in out or (
        "created at examples/leaky_sqlite.py:17 in handler" in out
    )
    assert "released after the soak: closed 1,0" in out
    summary = out.split("= safehandler soak =")[1]
    assert "test_with_the_fixture" not in summary  # check=False: not a failure
    assert "INTERNALERROR" not in out + proc.stderr  # pytest itself kept its fds


def test_the_events_example_soaks_generated_sqs_batches(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "test_events.py", "-p", "no:cacheprovider"],
        cwd=workdir(tmp_path) / "examples",
        capture_output=True,
        text=True,
        timeout=300,
        env=env(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_marker_paths_are_relative_to_the_test_file(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("service")
    (sub / "handlers.py").write_text(
        "def fails_when_asked(event, context):\n"
        "    return {'statusCode': 500 if event.get('fail') else 200}\n"
    )
    (sub / "events").mkdir()
    (sub / "events" / "fail.json").write_text('{"fail": true}')
    (sub / "test_it.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.soak(invocations=5, handler='handlers.py:fails_when_asked',\n"
        "                  events='events/fail.json')\n"
        "def test_from_the_root():\n"
        "    pass\n"
    )
    result = pytester.runpytest_subprocess("service/test_it.py")  # from the project root
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*verdict: FAILING, 5 of 5 invocations failed*"])

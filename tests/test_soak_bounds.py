"""Bounded soaks: fail-fast, a time budget, Lambda's per-invocation timeout; report files
written whole or not at all."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from safehandler.errors import ConfigError
from safehandler.testing import FakeLambdaContext, soak

from ._cli import env, run, workdir


def test_fail_fast_stops_a_leaky_orm_handler_at_the_verdict(tmp_path: Path) -> None:
    code, stdout, stderr, report = run(
        "examples/leaky_pool.py:handler", "--fail-fast", tmp_path=tmp_path
    )
    assert code == 1, stderr
    assert report is not None
    # the verdict was known at invocation 2; the other 1,498 would each have waited 1 s
    assert (report["invocations"], report["planned"]) == (2, 1500)
    assert report["stopped"].startswith("fail-fast: ")
    assert report["failures"]["first"]["invocation"] == 2
    assert report["failures"]["first"]["error"] == "TimeoutError"
    assert "stopped after invocation 2 of 1,500: fail-fast: " in stdout


def test_without_fail_fast_every_invocation_waits_for_the_pool(tmp_path: Path) -> None:
    code, _, stderr, report = run("examples/leaky_pool.py:handler", "-n", "4", tmp_path=tmp_path)
    assert code == 1, stderr
    assert report is not None
    assert (report["invocations"], report["stopped"]) == (4, None)
    assert report["failures"]["evolution"] == (
        "failures began at invocation 2, every invocation since"
    )


def test_fail_fast_on_a_clean_handler_runs_every_invocation(tmp_path: Path) -> None:
    code, _, stderr, report = run(
        "examples/fixed_sqlite.py:handler", "-n", "50", "--fail-fast", tmp_path=tmp_path
    )
    assert code == 0, stderr
    assert report is not None
    assert (report["verdict"], report["invocations"], report["stopped"]) == ("clean", 50, None)


SLEEPS = """
import pathlib, sys, time


def handler(event, context):
    pathlib.Path("started").touch()
    time.sleep(float(event.get("sleep", 60)))
"""


def test_an_invocation_past_its_timeout_fails_as_on_lambda(tmp_path: Path) -> None:
    (tmp_path / "sleepy.py").write_text(SLEEPS)
    code, stdout, stderr, report = run(
        "sleepy.py:handler", "-n", "2", "--timeout", "0.5", tmp_path=tmp_path
    )
    assert code == 1, stderr
    assert report is not None
    assert report["timeout"] == 0.5
    assert report["error_types"] == {"InvocationTimeout": 2}
    assert report["failures"]["first"]["message"] == "Task timed out after 0.50 seconds"
    assert "verdict: FAILING, 2 of 2 invocations failed" in stdout


def test_the_context_counts_down_from_the_timeout() -> None:
    remaining: list[int] = []

    def handler(event: Any, context: FakeLambdaContext) -> None:
        remaining.append(context.get_remaining_time_in_millis())

    report = soak(handler, invocations=3, timeout=0.75)
    assert report.clean, str(report)
    assert all(600 < ms <= 750 for ms in remaining), remaining
    soak(handler, invocations=1)  # by default, the Lambda console's 3 s
    assert 2500 < remaining[-1] <= 3000


def test_max_seconds_ends_the_soak_and_reports_what_ran(tmp_path: Path) -> None:
    (tmp_path / "sleepy.py").write_text(SLEEPS)
    (tmp_path / "short.json").write_text(json.dumps({"sleep": 0.05}))
    code, stdout, stderr, report = run(
        "sleepy.py:handler", "--event", "short.json", "--max-seconds", "0.5", tmp_path=tmp_path
    )
    assert code == 0, stdout + stderr
    assert report is not None
    assert 1 <= report["invocations"] < 1500
    assert report["stopped"] == "max-seconds: 0.5 s have gone by"
    assert report["verdict"] == "clean"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "'0': must be a number of seconds above 0"),
        (["--max-seconds", "-1"], "'-1': must be a number of seconds above 0"),
        (["--timeout", "nan"], "'nan': must be a number of seconds above 0"),
    ],
)
def test_bad_bounds_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    code, _, stderr, report = run("examples/clean_reuse.py:handler", *args, tmp_path=tmp_path)
    assert (code, report) == (2, None)
    assert message in stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timeout": 0}, "timeout=0: must be in (0, 900] seconds"),
        ({"timeout": 901}, "timeout=901: must be in (0, 900] seconds"),
        ({"max_seconds": 0}, "max_seconds=0: must be above 0 seconds"),
        ({"invocations": 0}, "invocations=0: must be a whole number of at least 1"),
    ],
)
def test_bad_bounds_in_python_are_config_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        soak(lambda event, context: None, **settings)
    assert str(raised.value) == message


def start_slow_soak(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "sleepy.py").write_text(SLEEPS)
    (tmp_path / "slow.json").write_text(json.dumps({"sleep": 0.05}))
    out = tmp_path / "report.json"
    argv = [sys.executable, "-m", "safehandler", "soak", "sleepy.py:handler"]
    proc = subprocess.Popen(
        [*argv, "--event", "slow.json", "--json", str(out), "--quiet"],
        cwd=workdir(tmp_path),
        env=env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, out


def test_a_terminated_soak_writes_the_report_of_what_ran(tmp_path: Path) -> None:
    proc, out = start_slow_soak(tmp_path)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr  # clean so far
    report = json.loads(out.read_text())
    assert report["stopped"] == "interrupted"
    assert 1 <= report["invocations"] < 1500
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".report")) == []


def test_a_killed_soak_leaves_no_empty_report(tmp_path: Path) -> None:
    proc, out = start_slow_soak(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    assert not out.exists()  # never created empty: written whole, or not at all

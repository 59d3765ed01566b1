"""Reading a soak's report: totals since baseline, the limits it really ran under, one global
counted once, --expect for a leak shown on purpose, and a picture rendered out of the tree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from safehandler.testing import soak
from safehandler.testing.html_report import render_html

from ._cli import ROOT, env, run, workdir
from ._lines import line_of

ITEMS: list[int] = []


def grows(event: Any, context: Any) -> None:
    ITEMS.append(1)  # grows-items


@pytest.fixture
def grown() -> Any:
    ITEMS.clear()
    yield soak(grows, invocations=300)
    ITEMS.clear()


def test_a_growing_global_shows_its_total_since_it_first_grew(grown: Any) -> None:
    [finding] = grown.findings
    assert finding.detail == (
        f"{__name__}.ITEMS grew: 1 -> 300 items since invocation 1"
    )  # not the last step, "299 -> 300"
    assert str(finding) == (
        f"{__name__}.ITEMS grew: 1 -> 300 items since invocation 1 "
        "(module global, changed in 300 invocations) "
        f"at tests/test_soak_reports.py:{line_of('grows-items')} in grows, reported at invocation 2"
    )


def test_the_html_counts_one_global_and_says_where_it_soaked(grown: Any) -> None:
    page = render_html(grown)
    assert "<td>1 module global (300 items)</td>" in page
    assert "300 module globals" not in page
    assert f'<dd>{grown.fd_limit:,} <span class="muted">(in-process)</span></dd>' in page


def test_an_isolated_soak_reports_the_limit_it_ran_under(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    code, _, stderr, report = run(
        "examples/leaky_file.py:handler",
        "--isolate",
        "--fd-limit",
        "256",
        "-n",
        "50",
        "--html",
        str(html),
        tmp_path=tmp_path,
    )
    assert code == 1, stderr
    assert report is not None
    assert (report["fd_limit"], report["isolated"]) == (256, True)
    page = html.read_text()
    assert '<dd>256 <span class="muted">(in a child process)</span></dd>' in page
    assert "RLIMIT_NOFILE 256" in page  # the chart's limit line


@pytest.mark.parametrize(
    ("target", "expect", "code"),
    [
        ("examples/leaky_sqlite.py:handler", "leak", 0),
        ("examples/fixed_sqlite.py:handler", "leak", 1),
        ("examples/fixed_sqlite.py:handler", "clean", 0),
        ("examples/leaky_sqlite.py:handler", "clean", 1),
    ],
)
def test_expect_exits_0_only_for_the_expected_verdict(
    target: str, expect: str, code: int, tmp_path: Path
) -> None:
    exit_code, stdout, stderr, report = run(
        target, "-n", "20", "--expect", expect, tmp_path=tmp_path
    )
    assert exit_code == code, stdout + stderr
    assert report is not None
    if code:
        assert stderr.strip().endswith(f"expected {expect}, the verdict is {report['verdict']}")
    else:
        assert report["verdict"] == expect


def test_the_readmes_first_command_expects_the_leak() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert readme[2:6] == [
        "```bash",
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/safehandler soak "
        "examples/leaky_sqlite.py:handler --event examples/events/api_gateway.json --expect leak",
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/python -m pytest",
        "```",
    ]


def test_render_report_writes_into_the_directory_it_is_given(tmp_path: Path) -> None:
    tracked = ROOT / "docs" / "soak-report.html"
    before = tracked.stat().st_mtime_ns
    out = tmp_path / "picture"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "render_report.py"), str(out)],
        cwd=workdir(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        env=env(tmp_path),
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: no chromium for the PNG
    assert f"wrote {out / 'soak-report.html'}" in proc.stdout
    assert (out / "soak-report.html").read_text().lower().startswith("<!doctype html>")
    assert tracked.stat().st_mtime_ns == before


def test_the_readme_documents_every_soak_flag() -> None:
    from safehandler.cli import _parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The command") : readme.index("### After an in-process")]
    documented = {
        code.split()[0]
        for line in section.splitlines()
        if line.startswith("| `-")
        for code in re.findall(r"`([^`]+)`", line.split(" | ")[0])
    }
    soak_parser = _parser()._subparsers._group_actions[0].choices["soak"]  # type: ignore[union-attr]
    flags = {
        flag
        for action in soak_parser._actions
        for flag in action.option_strings
        if flag not in ("-h", "--help")
    }
    assert documented == flags

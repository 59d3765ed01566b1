"""The HTML soak report: one self-contained page, charts drawn from real soaks, all text escaped."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from safehandler._records import InvocationStats
from safehandler.testing import SoakReport, soak
from safehandler.testing.html_report import MAX_POINTS, render_html

from ._lines import line_of

HERE = os.path.relpath(__file__)
MIB = 2**20


@pytest.fixture
def kept() -> Iterator[list[IO[str]]]:
    """Where the leaking handler keeps its files; closed after the test."""
    files: list[IO[str]] = []
    yield files
    for file in files:
        file.close()


@pytest.fixture
def leaky(kept: list[IO[str]], tmp_path: Path) -> SoakReport:
    target = tmp_path / "audit.log"

    def handler(event, context):
        kept.append(open(target, "a", encoding="utf-8"))  # leak-file

    return soak(handler, invocations=40)


@pytest.fixture
def clean(tmp_path: Path) -> SoakReport:
    target = tmp_path / "audit.log"

    def handler(event, context):
        with open(target, "a", encoding="utf-8") as log:
            log.write("ok\n")

    return soak(handler, invocations=40)


def section(html: str, key: str) -> str:
    """The chart section ``chart-<key>``."""
    match = re.search(rf'<section class="[^"]*" id="chart-{key}">(.*?)</section>', html, re.S)
    assert match, f"no chart {key}"
    return match.group(1)


def polylines(html: str) -> list[list[tuple[float, float]]]:
    lines = re.findall(r'<polyline class="series" points="([^"]*)"', html)
    return [[point(pair) for pair in line.split()] for line in lines]


def point(pair: str) -> tuple[float, float]:
    x, y = pair.split(",")
    return float(x), float(y)


def rule_y(chart: str, kind: str) -> float:
    match = re.search(rf'<line class="rule {kind}"[^>]* y1="([\d.]+)"', chart)
    assert match, f"no {kind} line"
    return float(match.group(1))


def test_one_self_contained_document(leaky: SoakReport) -> None:
    html = render_html(leaky)
    assert html.startswith("<!doctype html>")
    assert html.count("<html") == 1
    assert html.rstrip().endswith("</html>")
    for fetch in ("<script", "<link", "http://", "https://", "src=", "@import", "url("):
        assert fetch not in html
    assert "prefers-color-scheme: dark" in html


def test_one_svg_per_chart_with_data(leaky: SoakReport) -> None:
    html = render_html(leaky)
    assert html.count("<svg") == 4
    for key in ("fds", "threads", "db", "rss"):
        assert section(html, key).count("<svg") == 1

    no_db = dataclasses.replace(leaky, stats=[row._replace(db=None) for row in leaky.stats])
    html = render_html(no_db)
    assert html.count("<svg") == 3
    assert "not recorded in this soak" in section(html, "db")


def test_fd_line_climbs_one_point_per_invocation(leaky: SoakReport) -> None:
    [line] = polylines(section(render_html(leaky), "fds"))
    assert len(line) == len(leaky.stats) == 40
    xs = [x for x, _ in line]
    ys = [y for _, y in line]
    assert xs == sorted(xs)
    # SVG's y grows downwards: a climbing line has falling y
    assert ys == sorted(ys, reverse=True)
    assert ys[-1] < ys[0]


def test_limit_and_threshold_lines(leaky: SoakReport) -> None:
    fds = section(render_html(leaky), "fds")
    assert "Lambda RLIMIT_NOFILE 1,024" in fds
    assert "unhealthy at 50% (512)" in fds
    assert rule_y(fds, "threshold") > rule_y(fds, "limit")  # lower on the page

    rss = section(render_html(leaky, memory_limit_bytes=512 * MIB), "rss")
    assert "memory limit 512 MiB" in rss
    assert "unhealthy at 80% (409.6 MiB)" in rss
    assert rule_y(rss, "threshold") > rule_y(rss, "limit")

    html = render_html(leaky, fd_limit=None)
    assert "RLIMIT_NOFILE 1,024" not in section(html, "fds")
    assert "unhealthy" not in html
    assert "RLIMIT_NOFILE 4,096" in render_html(leaky, fd_limit=4096, fd_threshold=None)


def test_findings_table_names_the_site_and_count(leaky: SoakReport) -> None:
    [finding] = leaky.findings
    html = render_html(leaky)
    table = html[html.index("<table") : html.index("</table>")]
    assert f"<code>{HERE}:{line_of('leak-file')}</code> in handler" in table
    assert f"<td>{finding.count:,} files</td>" in table
    assert '<span class="verdict leak">LEAK</span> 1 finding' in html
    assert 'class="found"' in section(html, "fds")  # marked where it was reported


def test_everything_from_the_report_is_escaped(leaky: SoakReport) -> None:
    attack = "<script>alert(1)</script>"
    findings = [leaky.findings[0].replace(detail=attack)]
    html = render_html(
        dataclasses.replace(leaky, findings=findings, handler=f"app:{attack}"),
        title=f"soak {attack}",
    )
    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # title, h1, handler, table


def test_clean_report_says_clean(clean: SoakReport) -> None:
    html = render_html(clean)
    assert '<span class="verdict clean">clean</span>' in html
    assert "LEAK" not in html
    assert "<table" not in html
    assert 'class="found"' not in html
    assert 'class="raised"' not in html


def test_invocations_that_raised_are_ticked() -> None:
    calls: list[None] = []

    def handler(event, context):
        calls.append(None)
        if len(calls) % 4 == 0:
            raise KeyError("order")

    report = soak(handler, invocations=40)
    html = render_html(report)
    assert '<dd>10 <span class="muted">(10 KeyError)</span></dd>' in html
    ticks = re.search(r'<path class="raised" d="([^"]*)"', section(html, "fds"))
    assert ticks
    assert ticks.group(1).count("M") == 10
    assert "failing from 4" in section(html, "fds")


def test_a_probe_switched_off_leaves_a_gap(leaky: SoakReport) -> None:
    stats = [row._replace(fds=None) if 10 < row.invocation <= 20 else row for row in leaky.stats]
    lines = polylines(section(render_html(dataclasses.replace(leaky, stats=stats)), "fds"))
    assert [len(line) for line in lines] == [10, 20]


def test_long_series_render_fast_and_downsampled(clean: SoakReport) -> None:
    n = 10_000
    stats = [
        InvocationStats(
            invocation=i,
            fds=900 if i == 5_005 else 10 + i // 1_000,  # one spike must survive
            threads=1,
            rss=(20 + i // 100) * MIB,
            failed=i % 7 == 0,
            findings=0,
            db=0,
        )
        for i in range(1, n + 1)
    ]
    report = dataclasses.replace(clean, stats=stats, invocations=n)
    started = time.perf_counter()
    html = render_html(report)
    assert time.perf_counter() - started < 0.5
    [line] = polylines(section(html, "fds"))
    assert MAX_POINTS // 2 <= len(line) <= MAX_POINTS
    ys = sorted(y for _, y in line)
    assert ys[1] - ys[0] > 100  # the spike is still far above everything else
    assert len(html) < 500_000

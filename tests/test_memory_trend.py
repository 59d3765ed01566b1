"""Memory you can act on: the current rate, not the warm-up's; a fast leak found early; a
report that says when memory could not be judged yet; in soaks, the lines that allocate.

The trend's rules are shown on RSS series (pure); the real cases on real RSS: fresh pages
from mmap, touched, and boto3 clients kept per call.
"""

from __future__ import annotations

import math
import mmap
import os
from typing import Any

import boto3
import pytest

from safehandler._records import Finding
from safehandler.testing import soak
from safehandler.verdicts import MemoryTrend

from ._lines import line_of

KIB, MIB = 1024, 2**20


def feed(trend: MemoryTrend, values: list[int]) -> list[Finding]:
    return [f for i, v in enumerate(values, 1) if (f := trend.observe(i, v)) is not None]


def default_trend() -> MemoryTrend:
    """The production defaults: windows of 100, 4 KiB per invocation."""
    return MemoryTrend(window=100, leak_bytes=4 * KIB, limit_bytes=None)


def test_a_warm_up_that_levels_off_is_clean_over_1000_invocations() -> None:
    rss = [50 * MIB + min(i, 150) * 256 * KIB for i in range(1000)]  # +37.5 MiB, then flat
    assert feed(default_trend(), rss) == []


def test_the_rate_reported_is_the_current_one_not_the_warm_ups() -> None:
    # 20 MiB of warm-up settling over the first hundred invocations, then 8 KiB per call
    rss = [50 * MIB + int(20 * MIB * (1 - math.exp(-i / 30))) + 8 * KIB * i for i in range(400)]
    [finding] = feed(default_trend(), rss)
    assert finding.invocation == 400
    assert 8 * KIB <= finding.count < 8.5 * KIB  # not the warm-up's 60 KiB average
    assert "RSS grows 8." in finding.detail


def test_a_300_kib_per_invocation_leak_is_found_by_invocation_200() -> None:
    rss = [50 * MIB + 300 * KIB * i for i in range(300)]
    findings = feed(default_trend(), rss)
    assert [f.invocation for f in findings] == [200]
    assert findings[0].count == 300 * KIB
    assert "over the last 75 invocations" in findings[0].detail  # quarter windows


def test_quarter_windows_do_not_take_a_sawtooth_for_growth() -> None:
    rss = [50 * MIB + (i % 30) * 2 * MIB for i in range(2000)]  # peaks that fall back
    assert feed(default_trend(), rss) == []


def test_the_trends_state_is_bounded() -> None:
    trend = default_trend()
    for i in range(1, 200_001):
        trend.observe(i, 50 * MIB + i * 64)
    assert len(trend.floors) == 4  # the last four windows, never one entry per window


def test_the_trend_says_what_it_could_not_judge_yet() -> None:
    trend = default_trend()
    assert trend.unjudged(150) == (
        "memory not judged: the trend needs 200 invocations (ran 150; memory_window=100)"
    )
    assert trend.unjudged(250) == (
        "memory judged only for growth above 64 KiB per invocation: growth above 4 KiB "
        "needs 400 invocations (ran 250)"
    )
    assert trend.unjudged(400) is None
    short = MemoryTrend(window=10, leak_bytes=4 * KIB, limit_bytes=None)  # no quarter windows
    assert short.unjudged(39) == (
        "memory not judged: the trend needs 40 invocations (ran 39; memory_window=10)"
    )


def test_a_short_soak_says_memory_was_not_judged() -> None:
    report = soak(lambda event, context: None, invocations=50)
    assert report.clean
    assert report.notes == [
        "memory not judged: the trend needs 200 invocations (ran 50; memory_window=100)"
    ]
    assert "note: memory not judged" in str(report)
    assert report.to_dict()["notes"] == report.notes


def test_a_handler_whose_rss_plateaus_is_clean_in_a_1000_invocation_soak() -> None:
    blocks: list[mmap.mmap] = []

    def handler(event: Any, context: Any) -> None:
        if len(blocks) < 100:  # a cache that fills (25 MiB) and stops
            block = mmap.mmap(-1, 256 * KIB)
            block.write(os.urandom(256 * KIB))  # touched: real RSS
            blocks.append(block)

    try:
        report = soak(handler, invocations=1000)
    finally:
        for block in blocks:
            block.close()
    assert report.clean, str(report)
    assert report.notes == []  # judged


@pytest.mark.slow
def test_a_boto3_client_kept_per_call_is_found_within_300_with_its_allocation_line() -> None:
    kept: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        kept.append(boto3.client("s3", region_name="us-east-1"))  # boto3-allocates

    try:
        report = soak(handler, invocations=300)
    finally:
        for client in kept:
            client.close()
    [finding] = [f for f in report.findings if f.kind == "memory"]
    assert finding.invocation <= 300
    assert finding.count > 64 * KIB
    [top, *_] = finding.extra["allocated_at"]
    assert (top["file"], top["line"]) == (__file__, line_of("boto3-allocates"))
    assert f"allocated at tests/test_memory_trend.py:{line_of('boto3-allocates')}" in str(report)


def test_growth_outside_the_python_heap_is_said_to_be_native() -> None:
    blocks: list[mmap.mmap] = []

    def handler(event: Any, context: Any) -> None:
        block = mmap.mmap(-1, 300 * KIB)  # not the Python allocator's: tracemalloc sees none
        block.write(b"x" * (300 * KIB))
        blocks.append(block)

    try:
        report = soak(handler, invocations=230)
    finally:
        for block in blocks:
            block.close()
    [finding] = [f for f in report.findings if f.kind == "memory"]
    assert finding.invocation == 200  # found within 300
    assert finding.extra["allocated_at"] == []
    assert "allocated at: no Python allocation grew (tracemalloc): the growth is native" in str(
        report
    )


def test_a_soak_that_raises_out_leaves_tracemalloc_off() -> None:
    import tracemalloc

    blocks: list[mmap.mmap] = []

    def handler(event: Any, context: Any) -> None:
        if len(blocks) == 178:  # the floor rose twice: tracing its sample
            assert tracemalloc.is_tracing()
            raise KeyboardInterrupt  # the soak itself stops here
        block = mmap.mmap(-1, 300 * KIB)
        block.write(b"x" * (300 * KIB))
        blocks.append(block)

    try:
        report = soak(handler, invocations=300)  # an interrupted soak reports what ran
    finally:
        for block in blocks:
            block.close()
    assert report.stopped == "interrupted"
    assert not tracemalloc.is_tracing()

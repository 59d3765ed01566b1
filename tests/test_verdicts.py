"""The pure judgement: growth per creation site, memory trends, health thresholds."""

from __future__ import annotations

import copy
import pickle

import pytest

from safehandler._records import Finding, Resource, Site
from safehandler.health import judge_health
from safehandler.verdicts import LeakTracker, MemoryTrend

SITE = Site("/srv/app.py", 12, "handler", "pymysql.connections.Connection.__init__")
OTHER = Site("/srv/app.py", 30, "handler")


def fd(key: int, site: Site | None = SITE, invocation: int = 1) -> Resource:
    return Resource("socket", key, "socket", "to 127.0.0.1:3306", site, invocation)


def test_one_retention_is_not_a_leak_two_growths_are() -> None:
    tracker = LeakTracker(leak_after=2)
    assert tracker.observe(1, [fd(10)], []) == []
    [finding] = tracker.observe(2, [fd(11, invocation=2)], [])
    assert (finding.count, finding.first_invocation, finding.invocation) == (2, 1, 2)
    assert finding.site == SITE
    assert str(finding) == (
        "2 sockets to 127.0.0.1:3306 created at /srv/app.py:12 in handler "
        "(via pymysql.connections.Connection.__init__), first retained at invocation 1, "
        "reported at invocation 2"
    )


def test_replacing_a_closed_resource_is_not_growth() -> None:
    tracker = LeakTracker(leak_after=2)
    tracker.observe(1, [fd(10)], [])
    for invocation in range(2, 50):
        assert tracker.observe(invocation, [fd(invocation + 10)], [fd(invocation + 9)]) == []


def test_sites_are_judged_separately() -> None:
    tracker = LeakTracker(leak_after=2)
    tracker.observe(1, [fd(10), fd(20, OTHER)], [])
    findings = tracker.observe(2, [fd(11)], [])
    assert [f.site for f in findings] == [SITE]


def test_threads_are_reported_at_their_first_retention() -> None:
    tracker = LeakTracker(leak_after=5)
    thread = Resource("thread", 1, "thread", "named 'x'", SITE, 1)
    assert [f.kind for f in tracker.observe(1, [thread], [])] == ["thread"]


def test_without_a_site_resources_group_by_what_they_are() -> None:
    tracker = LeakTracker(leak_after=1)
    pipes = [Resource("fd", n, "pipe", "", None, 1) for n in (3, 4)]
    [finding] = tracker.observe(1, pipes, [])
    assert (finding.noun, finding.count, finding.site) == ("pipe", 2, None)


def test_peak_and_open_counts() -> None:
    tracker = LeakTracker(leak_after=2)
    tracker.observe(1, [fd(10), fd(11)], [])
    tracker.observe(2, [], [fd(10)])
    history = tracker.history(fd(10).group)
    assert history is not None
    assert history.peak == 2
    assert tracker.open_counts() == [(1, SITE, "socket to 127.0.0.1:3306")]


def feed(trend: MemoryTrend, values: list[int]) -> list[object]:
    return [f for i, v in enumerate(values, 1) if (f := trend.observe(i, v)) is not None]


def test_memory_floor_rising_over_three_windows_is_reported_with_rate_and_projection() -> None:
    trend = MemoryTrend(window=10, leak_bytes=1024, limit_bytes=128 * 2**20)
    rss = [100 * 2**20 + i * 8192 for i in range(40)]
    [finding] = feed(trend, rss)
    assert finding.kind == "memory"  # type: ignore[attr-defined]
    assert finding.count == 8192  # type: ignore[attr-defined]
    assert "RSS grows 8.0 KiB per invocation over the last 30 invocations" in str(finding)
    assert "the 128 MiB limit is reached in about" in str(finding)


def test_memory_peaks_that_fall_back_are_noise() -> None:
    trend = MemoryTrend(window=10, leak_bytes=1024, limit_bytes=None)
    rss = [50 * 2**20 + (i % 10) * 2**20 for i in range(200)]  # a sawtooth, same floor
    assert feed(trend, rss) == []


def test_memory_growth_below_the_threshold_is_ignored() -> None:
    trend = MemoryTrend(window=10, leak_bytes=64 * 1024, limit_bytes=None)
    assert feed(trend, [2**20 + i * 4096 for i in range(100)]) == []


def test_memory_is_reported_again_only_after_three_more_windows() -> None:
    trend = MemoryTrend(window=10, leak_bytes=1024, limit_bytes=None)
    findings = feed(trend, [2**20 + i * 8192 for i in range(100)])
    assert [f.invocation for f in findings] == [40, 70, 100]  # type: ignore[attr-defined]


def test_health_thresholds() -> None:
    healthy = judge_health(
        fds=500,
        fd_limit=1024,
        fd_threshold=0.5,
        rss=100,
        memory_limit=1000,
        memory_threshold=0.8,
    )
    assert healthy.healthy
    sick = judge_health(
        fds=513,
        fd_limit=1024,
        fd_threshold=0.5,
        rss=900 * 2**20,
        memory_limit=1024 * 2**20,
        memory_threshold=0.8,
    )
    assert sick.reasons == (
        "513 open fds > 50% of RLIMIT_NOFILE 1024",
        "RSS 900 MiB > 80% of the 1024 MiB memory limit",
    )


def test_findings_are_immutable_records_whose_group_is_bookkeeping() -> None:
    finding = Finding("fd", 2, SITE, 1, "open on /x", noun="file", invocation=2, group=("g",))
    with pytest.raises(AttributeError, match="immutable"):
        finding.count = 3  # type: ignore[misc]
    bigger = finding.replace(count=3)
    assert (bigger.count, bigger.detail, bigger.group, finding.count) == (
        3,
        "open on /x",
        ("g",),
        2,
    )
    same = Finding("fd", 2, SITE, 1, "open on /x", noun="file", invocation=2)
    assert finding == same
    assert hash(finding) == hash(same)
    assert finding != bigger
    assert repr(finding).startswith("Finding(kind='fd', count=2, site=Site(filename='/srv/app.py'")


def test_findings_copy_and_pickle_whole() -> None:
    finding = Finding(
        "fd", 2, SITE, 1, "open on /x", noun="file", extra={"path": "a"}, group=("g",)
    )
    for twin in (pickle.loads(pickle.dumps(finding)), copy.deepcopy(finding), copy.copy(finding)):
        assert twin == finding
        assert (twin.group, twin.extra, twin.site) == (("g",), {"path": "a"}, SITE)

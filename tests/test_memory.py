"""The memory probe and trend against real RSS."""

from __future__ import annotations

import mmap
import os

import psutil

from safehandler.health import memory_limit_bytes
from safehandler.probes.memory import MemoryProbe

from ._fork import in_forked_child


def test_rss_matches_psutil() -> None:
    ours, theirs = MemoryProbe().snapshot(), psutil.Process().memory_info().rss
    assert abs(ours - theirs) < 4 * 2**20


def test_a_forked_child_reads_its_own_rss() -> None:
    """The statm descriptor is opened once, and "self" was the parent: a child reopens it."""
    probe = MemoryProbe()

    def measure() -> list[int]:  # the child: touch 64 MiB that the parent never has
        untouched = probe.snapshot()
        block = mmap.mmap(-1, 64 << 20)
        block.write(b"x" * (64 << 20))
        return [untouched, probe.snapshot(), psutil.Process().memory_info().rss]

    parent_before = probe.snapshot()
    untouched, child_rss, child_psutil = in_forked_child(measure)
    assert abs(child_rss - child_psutil) < 4 << 20
    # The parent's RSS did not move; the child's own grew by what it touched. (Comparing the
    # child with the parent directly fails: after fork the child has not yet faulted in the
    # parent's file-backed pages, so it starts below it.)
    assert abs(probe.snapshot() - parent_before) < 16 << 20
    assert child_rss - untouched > 48 << 20


def test_limit_order_configured_then_lambda_then_cgroup() -> None:
    assert memory_limit_bytes(256, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}) == 256 * 2**20
    assert memory_limit_bytes(None, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}) == 512 * 2**20
    from_cgroup = memory_limit_bytes(None, {})
    assert from_cgroup is None or from_cgroup > 0


def test_growing_handler_is_reported_as_memory_growth(guarded) -> None:
    hoard: list[mmap.mmap] = []

    def handler(event, context):
        # fresh pages from the kernel, touched: real RSS, whatever malloc has free from
        # earlier tests
        block = mmap.mmap(-1, 256 * 1024)
        block.write(os.urandom(256 * 1024))
        hoard.append(block)

    guard = guarded(handler, memory_window=10, memory_leak_kb=64, probes=["memory"])
    try:
        guard(45)
    finally:
        for block in hoard:
            block.close()
    [finding] = guard.findings
    assert finding.kind == "memory"
    assert 200 * 1024 < finding.count < 320 * 1024  # bytes per invocation
    assert finding.invocation == 40


def test_allocating_and_freeing_is_clean(guarded) -> None:
    def handler(event, context):
        return len(os.urandom(256 * 1024))

    guard = guarded(handler, memory_window=10, memory_leak_kb=64, probes=["memory"])
    guard(60)
    assert guard.findings == []

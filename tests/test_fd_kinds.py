"""Every fd kind has a site and a stable group: one finding per creation site, never one per
invocation, whatever ``/proc/self/fd`` calls the fd (``/tmp/#123 (deleted)``, ``pipe:[..]``,
``/memfd:buf (deleted)``, ``anon_inode:[eventpoll]``).

Each leaking handler keeps what it made for 50 invocations of a soak; each clean twin closes it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safehandler._records import Finding
from safehandler.testing import soak

from ._lines import line_of

INVOCATIONS = 50


@pytest.fixture
def kept() -> Iterator[list[Any]]:
    """What the leaking handlers keep; closed at teardown."""
    items: list[Any] = []
    yield items
    for item in items:
        if isinstance(item, asyncio.AbstractEventLoop):
            item.close()
        elif isinstance(item, subprocess.Popen):
            for stream in (item.stdin, item.stdout, item.stderr):
                if stream is not None:
                    stream.close()
            item.wait()
        elif isinstance(item, tuple):
            for fd in item:
                os.close(fd)
        elif isinstance(item, int):
            os.close(item)
        else:
            item.close()


def the_fd_finding(handler: Callable[..., Any]) -> Finding:
    # (the kept fixture closes what was kept: the soak's own release would close it first)
    report = soak(handler, invocations=INVOCATIONS, release=False)
    [finding] = report.findings  # one, for every invocation of one site
    assert finding.kind == "fd", str(report)
    assert (finding.first_invocation, finding.invocation) == (1, 2)
    return finding


def assert_site(finding: Finding, marker: str, via: str | None) -> None:
    assert finding.site is not None, str(finding)
    assert (finding.site.filename, finding.site.lineno) == (__file__, line_of(marker))
    assert finding.site.via == via


def test_a_temporary_file_kept_per_call_is_one_finding_by_directory(
    kept: list[Any], tmp_path: Path
) -> None:
    def handler(event: Any, context: Any) -> None:
        kept.append(tempfile.TemporaryFile(dir=tmp_path))  # tempfile-kept

    finding = the_fd_finding(handler)
    # O_TMPFILE: each is /tmp/.../#<inode> (deleted), told and grouped by its directory
    assert (finding.noun, finding.count) == ("anonymous temporary file", INVOCATIONS)
    assert finding.detail == f"in {os.path.realpath(tmp_path)}"
    assert_site(finding, "tempfile-kept", "tempfile.TemporaryFile")


def test_a_popen_with_pipes_kept_per_call_is_one_finding_at_the_popen_line(
    kept: list[Any],
) -> None:
    def handler(event: Any, context: Any) -> None:
        child = subprocess.Popen(  # popen-kept
            [sys.executable, "-c", "pass"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        child.wait()  # reaped: only its pipes are left
        kept.append(child)

    finding = the_fd_finding(handler)
    assert (finding.noun, finding.count) == ("pipe", 3 * INVOCATIONS)
    assert_site(finding, "popen-kept", "subprocess.Popen.__init__")


def test_os_pipe_kept_per_call_is_one_finding(kept: list[Any]) -> None:
    def handler(event: Any, context: Any) -> None:
        kept.append(os.pipe())  # pipe-kept

    finding = the_fd_finding(handler)
    assert (finding.noun, finding.count) == ("pipe", 2 * INVOCATIONS)
    assert_site(finding, "pipe-kept", None)


def test_a_memfd_kept_per_call_is_one_finding(kept: list[Any]) -> None:
    def handler(event: Any, context: Any) -> None:
        kept.append(os.memfd_create("frames"))  # memfd-kept

    finding = the_fd_finding(handler)
    assert (finding.noun, finding.count, finding.detail) == (
        "memfd",
        INVOCATIONS,
        "named 'frames'",
    )
    assert_site(finding, "memfd-kept", None)


def test_an_unclosed_event_loop_per_call_is_one_finding_at_its_line(kept: list[Any]) -> None:
    def handler(event: Any, context: Any) -> int:
        loop = asyncio.new_event_loop()  # loop-kept
        kept.append(loop)
        return loop.run_until_complete(asyncio.sleep(0, result=1))

    finding = the_fd_finding(handler)
    # its epoll and its self-pipe's two sockets, told as the loop's
    assert (finding.noun, finding.count) == ("fd", 3 * INVOCATIONS)
    assert finding.detail == "of asyncio event loops never closed"
    assert_site(finding, "loop-kept", "asyncio event loop")
    assert finding.site is not None
    assert finding.site.first_use is None  # made and first used on the same line


def test_the_clean_twins_are_clean(tmp_path: Path) -> None:
    def handler(event: Any, context: Any) -> None:
        with tempfile.TemporaryFile(dir=tmp_path) as file:
            file.write(b"x")
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        read, write = os.pipe()
        os.close(read)
        os.close(write)
        os.close(os.memfd_create("frames"))
        loop = asyncio.new_event_loop()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        asyncio.run(asyncio.sleep(0))

    report = soak(handler, invocations=INVOCATIONS)
    assert report.clean, str(report)


def test_a_module_level_event_loop_is_not_the_invocations() -> None:
    loop = asyncio.new_event_loop()

    def handler(event: Any, context: Any) -> int:
        return loop.run_until_complete(asyncio.sleep(0, result=1))

    try:
        report = soak(handler, invocations=INVOCATIONS)
    finally:
        loop.close()
    assert report.clean, str(report)

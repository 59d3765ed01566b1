"""The fd probe: files, sockets and pipes left open by invocations, attributed to their line."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehandler.probes import fds
from safehandler.probes.fds import count_fds, fd_table

from ._fork import in_forked_child
from ._lines import line_of

HERE = os.path.relpath(__file__)


@pytest.fixture(autouse=True, params=["kernel counts", "no count (before 6.2)"])
def kernel(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test on both paths: Lambda's kernel gives no count and is emulated here."""
    fds.emulate_kernel_without_count(request.param != "kernel counts")
    yield request.param
    fds.emulate_kernel_without_count(False)


@pytest.fixture
def kept() -> Iterator[list[object]]:
    """Somewhere for a leaking handler to keep what it leaks; closed after the test."""
    items: list[object] = []
    yield items
    for item in items:
        if isinstance(item, int):
            os.close(item)
        else:
            item.close()  # type: ignore[attr-defined]


@pytest.fixture
def server() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield listener


def test_count_matches_the_fd_table() -> None:
    assert count_fds() == len(fd_table())
    with open(__file__, encoding="utf-8"):
        assert count_fds() == len(fd_table())


def test_a_forked_child_counts_its_own_fds() -> None:
    """The counter holds /proc/self/fd open, and "self" was the parent: a child reopens it."""

    def measure() -> list[int]:  # the child: open three more, count both ways
        extra = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
        return [count_fds(), len(fd_table()), len(extra)]

    counted, listed, extra = in_forked_child(measure)
    assert counted == listed
    assert counted >= extra + 3  # stdin, stdout, stderr at least
    assert count_fds() == len(fd_table())  # and the parent still counts its own


def test_file_left_open_per_call_is_reported_when_it_first_grows(
    guarded, kept, tmp_path: Path
) -> None:
    target = tmp_path / "audit.log"

    def handler(event, context):
        kept.append(open(target, "a", encoding="utf-8"))  # leak-file

    guard = guarded(handler)
    guard(1)
    assert guard.findings == []  # retained once is not a leak yet: it could be a cache
    guard(1)
    [finding] = guard.findings
    assert (finding.kind, finding.noun, finding.count) == ("fd", "file", 2)
    assert finding.site is not None
    assert finding.site.location == f"{HERE}:{line_of('leak-file')}"
    assert finding.site.function == "handler"
    assert (finding.first_invocation, finding.invocation) == (1, 2)
    assert finding.detail == f"open on {os.path.realpath(target)}"
    assert str(finding).startswith(f"2 files open on {os.path.realpath(target)} created at ")


def test_clean_twin_closing_its_file_reports_nothing(guarded, tmp_path: Path) -> None:
    target = tmp_path / "audit.log"

    def handler(event, context):
        with open(target, "a", encoding="utf-8") as log:
            log.write("ok\n")

    guard = guarded(handler)
    guard(50)
    assert guard.findings == []
    assert guard.engine.open_counts() == []


def test_module_level_resource_opened_once_and_reused_is_not_a_leak(
    guarded, kept, tmp_path: Path
) -> None:
    def handler(event, context):
        if not kept:
            kept.append(open(tmp_path / "cache", "w", encoding="utf-8"))
        kept[0].write("x")

    guard = guarded(handler, leak_after=2)
    guard(30)
    assert guard.findings == []
    [(count, _site, what)] = guard.engine.open_counts()
    assert (count, what.split()[0]) == (1, "file")  # retained, not leaked


def test_reopening_what_it_closed_is_reuse_not_growth(guarded, kept, tmp_path: Path) -> None:
    def handler(event, context):
        if kept:
            kept.pop().close()
        kept.append(open(tmp_path / "rotating.log", "a", encoding="utf-8"))

    guard = guarded(handler, leak_after=2)
    guard(20)
    assert guard.findings == []


def test_report_again_only_when_the_count_doubles(guarded, kept, tmp_path: Path) -> None:
    def handler(event, context):
        kept.append(open(tmp_path / "f", "a", encoding="utf-8"))

    guard = guarded(handler)
    guard(9)
    assert [(f.count, f.invocation) for f in guard.findings] == [(2, 2), (4, 4), (8, 8)]


def test_leak_after_sets_how_many_growing_invocations_are_tolerated(
    guarded, kept, tmp_path: Path
) -> None:
    def handler(event, context):
        kept.append(open(tmp_path / "f", "a", encoding="utf-8"))

    guard = guarded(handler, leak_after=5)
    guard(4)
    assert guard.findings == []
    guard(1)
    assert [(f.count, f.invocation) for f in guard.findings] == [(5, 5)]


def test_socket_left_open_names_the_peer_and_the_library_call(
    guarded, kept, server: socket.socket
) -> None:
    host, port = server.getsockname()

    def handler(event, context):
        kept.append(socket.create_connection((host, port)))  # leak-socket

    guard = guarded(handler)
    guard(3)
    [finding] = guard.findings
    assert (finding.kind, finding.noun, finding.count) == ("socket", "socket", 2)
    assert finding.detail == f"to 127.0.0.1:{port}"
    assert finding.site is not None
    assert finding.site.location == f"{HERE}:{line_of('leak-socket')}"
    assert finding.site.via == "socket.create_connection"
    assert f"2 sockets to 127.0.0.1:{port} created at {HERE}:" in str(finding)


def test_connection_closed_before_return_is_clean(guarded, server: socket.socket) -> None:
    def handler(event, context):
        with socket.create_connection(server.getsockname()):
            pass

    guard = guarded(handler)
    guard(20)
    assert guard.findings == []


def test_pipe_without_an_audit_event_gets_the_line_that_made_it(guarded, kept) -> None:
    def handler(event, context):
        kept.extend(os.pipe())  # os-pipe

    guard = guarded(handler)
    guard(2)
    [finding] = guard.findings
    # os.pipe raises no audit event: its wrapper tells the line
    assert (finding.kind, finding.noun, finding.count) == ("fd", "pipe", 4)
    assert finding.site is not None
    assert (finding.site.location, finding.site.via) == (f"{HERE}:{line_of('os-pipe')}", None)


def test_an_fd_no_wrapper_sees_is_still_counted(guarded, kept) -> None:
    import posix

    def handler(event, context):
        kept.extend(posix.pipe())  # the C function itself, past the os.pipe wrapper

    guard = guarded(handler)
    guard(2)
    [finding] = guard.findings
    assert (finding.kind, finding.noun, finding.count, finding.site) == ("fd", "pipe", 4, None)
    assert "created at an unknown site" in str(finding)


def test_fds_opened_between_invocations_belong_to_no_invocation(
    guarded, kept, tmp_path: Path
) -> None:
    guard = guarded(lambda event, context: None)
    for _ in range(5):
        guard(1)
        kept.append(open(tmp_path / "outside", "a", encoding="utf-8"))
    assert guard.findings == []


def test_baseline_fds_from_init_are_never_reported(guarded, tmp_path: Path) -> None:
    with open(tmp_path / "init", "w", encoding="utf-8") as from_init:
        guard = guarded(lambda event, context: from_init.write("x"))
        guard(10)
    assert guard.findings == []


def test_closed_leaks_lower_the_open_count(guarded, kept, tmp_path: Path) -> None:
    def handler(event, context):
        if event.get("close"):
            while kept:
                kept.pop().close()
        else:
            kept.append(open(tmp_path / "f", "a", encoding="utf-8"))

    guard = guarded(handler)
    guard(3)
    guard(1, event={"close": True})
    assert guard.engine.open_counts() == []


def test_strict_raises_on_every_invocation_that_grows_a_known_leak(tmp_path: Path, kept) -> None:
    import safehandler

    @safehandler.guard(mode="strict")
    def handler(event, context):
        kept.append(open(tmp_path / "f", "a", encoding="utf-8"))

    handler({}, None)
    for count in (2, 3, 4):
        with pytest.raises(safehandler.UnclosedFdError, match=f"{count} files open on"):
            handler({}, None)


def test_running_out_of_fds_skips_a_reading_and_never_switches_the_probe_off(
    guarded, kept, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The table full is the very leak the probe watches: it cannot list /proc/self/fd then,
    but it is not broken, and once fds are free again it finds the leak as before."""
    import resource

    target = tmp_path / "data.bin"
    fill = {"on": False}

    def handler(event, context):
        kept.append(open(target, "ab"))  # leak-kept
        while fill["on"]:  # then the rest of the table, as a leak near the end does
            try:
                kept.append(open(target, "ab"))
            except OSError:
                break

    guard = guarded(handler, probes=["fds"])
    guard(1)  # the baseline: one file kept
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (count_fds() + 16, hard))
    fill["on"] = True
    try:
        with caplog.at_level("WARNING", logger="safehandler"):
            guard(1)  # ends with no fd free: the probe cannot list
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for item in kept[1:]:
        item.close()  # type: ignore[attr-defined]
    del kept[1:]
    fill["on"] = False
    assert "fds" in guard.engine.probes  # not switched off
    [told] = [r.getMessage() for r in caplog.records if "out of file descriptors" in r.getMessage()]
    assert "the fds probe skips a reading" in told
    guard(2)
    found = [f for f in guard.findings if f.kind == "fd"]
    assert found, guard.findings
    assert found[-1].site is not None
    assert found[-1].site.location == f"{HERE}:{line_of('leak-kept')}"

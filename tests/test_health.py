"""Health against the real soft RLIMIT_NOFILE: crossing the threshold is logged once."""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehandler import Policy
from safehandler._health_state import process_path, read_state, state_path, write_state
from safehandler._records import PastRecycle
from safehandler.health import RECYCLE_SPACING, HealthMonitor
from safehandler.probes.fds import count_fds


@pytest.fixture
def low_fd_limit() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = count_fds() + 40
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    yield limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_fds_past_the_threshold_mark_the_environment_unhealthy_once(
    guarded, low_fd_limit: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = []

    def handler(event, context):
        files.append(open(tmp_path / "f", "a", encoding="utf-8"))
        return "served"

    guard = guarded(handler, fd_threshold=0.5)
    caplog.set_level(logging.WARNING, logger="safehandler")
    try:
        results = []
        while guard.engine.healthy and len(files) < 40:
            results += guard(1)
        crossed_at = count_fds()
        results += guard(3)
    finally:
        for handle in files:
            handle.close()
    assert results == ["served"] * len(results)  # unhealthy never fails an invocation
    assert crossed_at > 0.5 * low_fd_limit
    assert crossed_at - 1 <= 0.5 * low_fd_limit  # noticed on the first invocation past it
    lines = [json.loads(r.getMessage()) for r in caplog.records if "unhealthy" in r.getMessage()]
    assert len(lines) == 1
    payload = lines[0]["safehandler"]
    assert payload["event"] == "safehandler.unhealthy"
    assert payload["fd_limit"] == low_fd_limit
    assert payload["fds"] == crossed_at
    assert payload["top_sites"][0]["site"].startswith("tests/test_health.py:")


def test_below_the_threshold_stays_healthy(guarded, low_fd_limit: int) -> None:
    guard = guarded(lambda event, context: None, fd_threshold=0.9)
    guard(20)
    assert guard.engine.healthy
    assert guard.engine.health is not None
    assert guard.engine.health.fd_limit == low_fd_limit


def test_the_state_file_goes_where_tempfile_would_put_it(tmp_path) -> None:
    assert state_path({"TMPDIR": str(tmp_path)}) == str(tmp_path / "safehandler-health.json")
    assert state_path({}) == "/tmp/safehandler-health.json"
    assert state_path({"SAFEHANDLER_HEALTH_FILE": "/x/h.json", "TMPDIR": "/y"}) == "/x/h.json"
    assert process_path("/x/h.json", 42) == "/x/h.42.json"


MIB = 2**20


def memory_monitor(previous: PastRecycle | None = None) -> HealthMonitor:
    """128 MB, unhealthy past 80% (102.4 MB); RSS only (fds None)."""
    return HealthMonitor(Policy(memory_threshold=0.8), 128 * MIB, previous)


def test_use_held_from_init_is_told_once_and_never_recycled() -> None:
    monitor = memory_monitor()
    assert monitor.check(1, None, 100 * MIB) is None  # the baseline: below, but close
    told = monitor.check(2, None, 103 * MIB)
    assert told is not None
    assert told.recyclable is False
    assert told.reasons == (
        "RSS 103 MiB > 80% of the 128 MiB memory limit; a recycle would not help: "
        "RSS 100 MiB after init, too close to the threshold",
    )
    assert [monitor.check(n, None, 104 * MIB) for n in range(3, 50)] == [None] * 47
    assert monitor.unhealthy_since is None


def test_growth_from_a_low_baseline_is_recycled() -> None:
    monitor = memory_monitor()
    assert monitor.check(1, None, 40 * MIB) is None
    assert monitor.check(2, None, 90 * MIB) is None
    health = monitor.check(3, None, 103 * MIB)
    assert health is not None
    assert health.recyclable is True
    assert monitor.unhealthy_since == 3


def test_after_a_recycle_the_next_waits_for_the_spacing() -> None:
    monitor = memory_monitor(PastRecycle(invocations=7, fds=None, rss=110 * MIB))
    assert monitor.check(1, None, 40 * MIB) is None
    early = [monitor.check(n, None, 110 * MIB) for n in range(2, RECYCLE_SPACING)]
    assert early == [None] * (RECYCLE_SPACING - 2)
    assert monitor.check(RECYCLE_SPACING, None, 110 * MIB) is not None
    assert monitor.unhealthy_since == RECYCLE_SPACING


WORKER = """
import resource, sys
import safehandler
from safehandler.probes.fds import count_fds

resource.setrlimit(resource.RLIMIT_NOFILE, (count_fds() + 40, 4096))
kept = []
leaks = sys.argv[1] == "leaks"
handler = safehandler.guard(
    lambda event, context: kept.append(open("/etc/hostname")) if leaks else None
)
for _ in range(30):
    handler({}, None)
print("served", flush=True)
sys.stdin.read()  # alive until the test closes stdin
"""


def start_worker(kind: str, base: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SAFEHANDLER_HEALTH_FILE": str(base)}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline() == "served\n"
    return worker


def stop(worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None
    worker.stdin.close()
    worker.wait(timeout=30)
    assert worker.stdout is not None
    worker.stdout.close()


def health(base: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "health", "--file", str(base)],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, proc.stdout


def test_two_live_workers_keep_their_own_state_and_the_worst_is_reported(
    tmp_path: Path,
) -> None:
    base = tmp_path / "health.json"
    assert health(base)[0] == 2  # no state yet
    sick = start_worker("leaks", base)
    well = start_worker("clean", base)  # its first write does not replace the other's state
    try:
        sick_state = read_state(process_path(str(base), sick.pid))
        well_state = read_state(process_path(str(base), well.pid))
        assert sick_state is not None
        assert well_state is not None
        assert (sick_state.healthy, well_state.healthy) == (False, True)
        status, out = health(base)
        assert status == 1
        assert out.startswith("UNHEALTHY since invocation ")
        assert f"(pid {sick.pid})" in out
        assert "open fds > 50% of RLIMIT_NOFILE" in out
        stop(sick)  # its file stays, but a dead process's state is not the environment's
        assert health(base) == (0, f"healthy (pid {well.pid}, invocation 1)\n")
    finally:
        for worker in (sick, well):
            if worker.poll() is None:
                stop(worker)
    assert health(base)[0] == 2


def test_a_planted_symlink_is_replaced_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "health.json"
    monkeypatch.setenv("SAFEHANDLER_HEALTH_FILE", str(base))
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    planted = Path(process_path(str(base), os.getpid()))
    planted.symlink_to(victim)
    write_state(True, (), 1)
    assert victim.read_text() == "precious\n"
    assert not planted.is_symlink()
    assert json.loads(planted.read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [planted.name, "victim"]  # no scratch


def test_a_symlink_is_not_read_as_a_state(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.json"
    write_state_at = tmp_path / "health.json"
    real.write_text(
        json.dumps({"healthy": True, "reasons": [], "pid": 1, "invocation": 1, "updated": 0})
    )
    Path(process_path(str(write_state_at), 1)).symlink_to(real)
    assert read_state(process_path(str(write_state_at), 1)) is None


def test_the_recycle_marker_never_follows_a_symlink(tmp_path: Path) -> None:
    from safehandler import recycle

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    marker = tmp_path / "recycle"
    marker.symlink_to(victim)
    recycle._mark(str(marker))
    assert victim.read_text() == "precious\n"


def test_the_suite_never_writes_the_production_path() -> None:
    assert state_path() != state_path({})  # this run's own directory (conftest)


def test_a_soak_writes_no_health_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safehandler.testing import soak

    monkeypatch.setenv("SAFEHANDLER_HEALTH_FILE", str(tmp_path / "health.json"))
    report = soak(lambda event, context: None, invocations=5)
    assert report.invocations == 5
    assert list(tmp_path.iterdir()) == []


def test_on_managed_instances_a_worker_is_judged_against_its_share() -> None:
    from safehandler.health import memory_limit_bytes

    lmi = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048", "AWS_LAMBDA_MAX_CONCURRENCY": "8"}
    assert memory_limit_bytes(None, lmi) == 256 * MIB  # 8 worker processes share 2,048 MB
    assert memory_limit_bytes(None, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}) == 2048 * MIB
    assert memory_limit_bytes(1024, lmi) == 1024 * MIB  # a configured limit is per process

"""Health against the real soft RLIMIT_NOFILE: crossing the threshold is logged once."""

from __future__ import annotations

import json
import logging
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    from safehandler._health_state import state_path

    assert state_path({"TMPDIR": str(tmp_path)}) == str(tmp_path / "safehandler-health.json")
    assert state_path({}) == "/tmp/safehandler-health.json"
    assert state_path({"SAFEHANDLER_HEALTH_FILE": "/x/h.json", "TMPDIR": "/y"}) == "/x/h.json"

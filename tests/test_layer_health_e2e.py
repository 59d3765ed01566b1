"""Health judged against what a recycle can fix, end to end (awslambdaric, the wrapper, 128 MB).

A function that holds most of its memory from init and does not leak is not recycled: a fresh
runtime would hold as much. A recycle that did not help (the fresh runtime starts as high as
the old one ended) is not repeated. Each case says so in one ``safehandler.unhealthy`` line.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

pytest.importorskip("awslambdaric")

WRAPPER = Path(__file__).resolve().parent.parent / "safehandler" / "exec_wrapper.sh"
MEMORY_MB = 128

HOLDS_FROM_INIT = """
import os

# ~100 MB, every page touched (a zero-filled bytearray would not be resident)
HELD = bytes(range(256)) * (int(os.environ["HOLD_MB"]) * 4096)


def handler(event, context):
    return {"n": event["n"], "pid": os.getpid()}
"""

# Generation 1 leaks 8 MB per invocation from a small init; every later generation (the
# wrapper counts them in SAFEHANDLER_RESTARTS) holds 100 MB from init: the recycle did not help.
WORSE_AFTER_A_RECYCLE = """
import os

HELD = bytes(range(256)) * ((100 if os.environ.get("SAFEHANDLER_RESTARTS") else 1) * 4096)
KEPT = []


def handler(event, context):
    KEPT.append(bytes(range(256)) * (8 * 4096))
    return {"n": event["n"], "pid": os.getpid()}
"""


def serve(tmp_path: Path, source: str, count: int, **env: str) -> tuple[LocalRuntimeAPI, str]:
    (tmp_path / "app.py").write_text(textwrap.dedent(source))
    env = {"TMPDIR": str(tmp_path), **env}
    with LocalRuntimeAPI([{"n": n} for n in range(1, count + 1)], memory_size=MEMORY_MB) as api:
        runtime = run_runtime("app.handler", task_root=tmp_path, api=api, wrapper=WRAPPER, env=env)
        assert api.wait_for(count, timeout=120), runtime.stderr_text()
        runtime.stop()
    assert [r.body["n"] for r in api.results if r.ok] == list(range(1, count + 1))
    return api, runtime.stdout_text() + runtime.stderr_text()


def restarts(api: LocalRuntimeAPI) -> int:
    return len({r.body["pid"] for r in api.results}) - 1


def unhealthy_lines(output: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[line.index("{") :])["safehandler"]
        for line in output.splitlines()
        if "safehandler.unhealthy" in line
    ]


def test_memory_held_from_init_is_not_recycled(tmp_path: Path) -> None:
    api, output = serve(tmp_path, HOLDS_FROM_INIT, 50, HOLD_MB="100")
    assert restarts(api) <= 1
    print(f"\n100 of 128 MB from init, 50 invocations: {restarts(api)} restarts")
    [line] = unhealthy_lines(output)
    assert line["recycle"] is False
    assert "a recycle would not help" in line["reasons"][0]
    assert "after init, too close to the threshold" in line["reasons"][0]


def test_a_clean_twin_with_room_says_nothing(tmp_path: Path) -> None:
    api, output = serve(tmp_path, HOLDS_FROM_INIT, 50, HOLD_MB="10")
    assert restarts(api) == 0
    assert unhealthy_lines(output) == []


def test_a_recycle_that_did_not_help_is_not_repeated(tmp_path: Path) -> None:
    api, output = serve(tmp_path, WORSE_AFTER_A_RECYCLE, 60)
    assert restarts(api) == 1  # the first generation's growth was worth one
    first, second = unhealthy_lines(output)
    assert first["recycle"] is True
    assert second["recycle"] is False
    assert "after init, too close to the threshold" in second["reasons"][0]

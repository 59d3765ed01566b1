"""The layer's log lines: which process and generation, structured under Lambda's JSON format,
and one line at init saying the layer is active (awslambdaric, the wrapper, the local API)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import safehandler
from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

pytest.importorskip("awslambdaric")

WRAPPER = Path(__file__).resolve().parent.parent / "safehandler" / "exec_wrapper.sh"

LEAKY = """
import os

KEPT = []


def handler(event, context):
    KEPT.append(open(os.devnull))  # leaked here
    return {"n": event["n"], "pid": os.getpid()}
"""


def run(tmp_path: Path, count: int, **env: str) -> tuple[list[dict[str, Any]], list[str]]:
    (tmp_path / "app.py").write_text(textwrap.dedent(LEAKY))
    env = {"TMPDIR": str(tmp_path), **env}
    with LocalRuntimeAPI([{"n": n} for n in range(1, count + 1)]) as api:
        runtime = run_runtime(
            "app.handler", task_root=tmp_path, api=api, wrapper=WRAPPER, env=env, rlimit_nofile=64
        )
        assert api.wait_for(count, timeout=120)
        runtime.stop()
    assert all(r.ok for r in api.results)
    return [r.body for r in api.results], runtime.stdout_text().splitlines()


def safehandler_fields(line: str) -> dict[str, Any] | None:
    """The ``safehandler`` object of a text-format line (a JSON object after the prefix)."""
    if '"safehandler": {' not in line:
        return None
    fields: dict[str, Any] = json.loads(line[line.index("{") :])["safehandler"]
    return fields


def test_lines_say_which_process_and_generation(tmp_path: Path) -> None:
    bodies, lines = run(tmp_path, 60, SAFEHANDLER_LEAK_SPAN="1")  # a leak line per generation
    pids = list(dict.fromkeys(body["pid"] for body in bodies))  # in order of generations
    assert len(pids) >= 3
    events = [f for f in map(safehandler_fields, lines) if f is not None]
    leaks = [f for f in events if f["event"] == "safehandler.leak" and f["kind"] == "fd"]
    # each generation finds the leak again, and says which generation it is
    assert {(f["pid"], f["generation"]) for f in leaks} == {
        (pid, generation) for generation, pid in enumerate(pids)
    }
    inits = [f for f in events if f["event"] == "safehandler.init"]
    assert [(f["pid"], f["generation"]) for f in inits] == [(pid, n) for n, pid in enumerate(pids)]


def test_one_init_line_names_the_version_and_the_settings(tmp_path: Path) -> None:
    _, lines = run(tmp_path, 1, SAFEHANDLER_FD_THRESHOLD="0.7")
    inits = [f for f in map(safehandler_fields, lines) if f and f["event"] == "safehandler.init"]
    assert len(inits) == 1
    [init] = inits
    assert init["version"] == safehandler.__version__
    assert init["handler"] == "app.handler"
    assert init["settings"]["SAFEHANDLER_FD_THRESHOLD"] == "0.7"
    assert init["settings"]["SAFEHANDLER_MODE"] == "report"


def test_under_the_json_log_format_the_fields_are_fields(tmp_path: Path) -> None:
    _, lines = run(tmp_path, 30, AWS_LAMBDA_LOG_FORMAT="JSON", SAFEHANDLER_LEAK_SPAN="1")
    records = [json.loads(line) for line in lines if line.startswith("{")]
    ours = [r for r in records if "safehandler" in r]
    assert {r["safehandler"]["event"] for r in ours} >= {
        "safehandler.init",
        "safehandler.leak",
        "safehandler.unhealthy",
    }
    for record in ours:
        assert isinstance(record["safehandler"], dict)  # a field, not a string to decode again
        assert isinstance(record["message"], str)
        assert not record["message"].lstrip().startswith("{")
        assert record["message"].startswith("safehandler")
        assert record["logger"] == "safehandler"
        assert record["safehandler"]["pid"] > 0

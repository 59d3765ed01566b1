"""End to end: the fleet view's EMF lines on the runtime's log output, through AWS's runtime
client and the layer's exec wrapper, beside the findings, before and after a recycle.

A handler leaks one file per invocation under an RLIMIT_NOFILE of 256: unhealthy past 128
fds, so the wrapper restarts the runtime about every 120 invocations. Lambda ships the
runtime's stdout to CloudWatch Logs; here it is the process's captured stdout.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

from .emf_spec import emf_lines, metric_values

pytest.importorskip("awslambdaric")

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "safehandler" / "exec_wrapper.sh"
INVOCATIONS = 300
FDS = 256

LEAKY_APP = """
import os

KEPT = []  # "reused later"; never


def handler(event, context):
    KEPT.append(open(os.devnull))
    return {"n": event["n"], "pid": os.getpid()}
"""


def _findings(text: str) -> list[dict[str, Any]]:
    """The finding lines (the JSON after awslambdaric's log prefix, if any)."""
    out = []
    for line in text.splitlines():
        start = line.find('{"message": "safehandler: ')
        if start >= 0:
            payload = json.loads(line[start:])["safehandler"]
            if payload["event"] == "safehandler.leak":
                out.append(payload)
    return out


def test_emf_lines_beside_the_findings_and_after_each_recycle(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(LEAKY_APP))
    env = {
        "SAFEHANDLER_METRICS": "emf",
        "SAFEHANDLER_PROBES": "fds,threads,memory",
        "SAFEHANDLER_HEALTH_FILE": "off",
    }
    events = [{"n": n} for n in range(1, INVOCATIONS + 1)]
    with LocalRuntimeAPI(events, timeout=30) as api:
        runtime = run_runtime(
            "app.handler", task_root=tmp_path, api=api, env=env, wrapper=WRAPPER, rlimit_nofile=FDS
        )
        assert api.wait_for(INVOCATIONS, timeout=120)
        runtime.stop()
        out = runtime.stdout_text()
    assert [r for r in api.results if not r.ok] == []
    pids = [r.body["pid"] for r in api.results]
    environments = list(dict.fromkeys(pids))  # in order
    assert len(environments) >= 2  # recycled at least once

    docs = emf_lines(out)  # every one valid by the spec
    figures = [d for d in docs if "kind" not in d]
    by_pid: dict[int, list[str]] = {}
    for doc in figures:
        by_pid.setdefault(doc["pid"], []).append(doc["trigger"])
    # each runtime: its first line, its unhealthy mark, its last line before the recycle
    for pid in environments[:-1]:
        assert by_pid[pid][0] == "first"
        assert by_pid[pid][-2:] == ["unhealthy", "recycle"]
    assert by_pid[environments[-1]][0] == "first"  # after the recycle: a new environment
    recycle_docs = [d for d in figures if d["trigger"] == "recycle"]
    assert len(recycle_docs) == len(environments) - 1
    for doc in recycle_docs:
        values = metric_values(doc)
        assert values["Recycles"] == 1
        assert values["FdShare"] > 50  # the mark was past half the fds
        assert doc["function_name"] == api.function_name
        assert "open fds > 50% of RLIMIT_NOFILE 256" in doc["reasons"][0]
    restarted = [d for d in figures if d["pid"] == environments[1]]
    assert restarted[0]["restarts"] == "1"  # the wrapper's count, as a property
    # the findings are on the same output, and counted by kind in the metrics
    leaks = _findings(out)
    assert leaks
    assert {leak["kind"] for leak in leaks} == {"fd"}
    fd_docs = [d for d in docs if d.get("kind") == "fd"]
    assert fd_docs
    assert fd_docs[0]["sites"][0]["site"].endswith("app.py:8")
    # the recycle's line comes before the runtime's exit: written and flushed in order
    lines = out.splitlines()
    recycle_at = next(i for i, line in enumerate(lines) if '"trigger":"recycle"' in line)
    first_after = next(
        i
        for i, line in enumerate(lines)
        if '"trigger":"first"' in line and f'"pid":{environments[1]}' in line
    )
    assert recycle_at < first_after

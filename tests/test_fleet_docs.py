"""The README's fleet view: its queries are the ones in examples/iac/, their patterns read real
finding lines (plain and in Lambda's JSON log format), and the alarm names what we emit."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

import safehandler

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAM = (ROOT / "examples" / "iac" / "template.yaml").read_text(encoding="utf-8")
CDK = ROOT / "examples" / "iac" / "cdk_stack.py"


def _fleet_section() -> str:
    start = README.index("## Fleet view")
    return README[start : README.index("\n## ", start + 1)]


def readme_queries() -> list[str]:
    """The Logs Insights queries: the fleet section's code blocks without a language."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", _fleet_section(), re.DOTALL | re.MULTILINE)
    return [body.strip() for language, body in blocks if not language]


def _sam_queries() -> list[str]:
    queries = []
    for match in re.finditer(r"QueryString: \|\n((?:        .*\n?)+)", SAM):
        lines = [line[8:] for line in match.group(1).splitlines()]
        queries.append("\n".join(lines).strip())
    return queries


def _cdk_queries() -> list[str]:
    tree = ast.parse(CDK.read_text(encoding="utf-8"))
    constants = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    ]
    return [c.strip() for c in constants if isinstance(c, str) and "@message" in c]


def test_the_three_queries_are_the_same_in_the_readme_sam_and_cdk() -> None:
    queries = readme_queries()
    assert len(queries) == 3
    assert _sam_queries() == queries
    assert _cdk_queries() == queries


def _patterns(query: str) -> dict[str, re.Pattern[str]]:
    """Each ``parse @message /.../`` as a Python pattern, by the field it extracts."""
    out = {}
    for raw in re.findall(r"parse @message /(.*)/$", query, re.MULTILINE):
        python = raw.replace("(?<", "(?P<")
        pattern = re.compile(python)
        [field] = pattern.groupindex
        out[field] = pattern
    return out


@pytest.fixture
def finding_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Real finding lines as the runtime writes them, in text and in JSON log format."""
    kept: list[Any] = []

    @safehandler.guard(probes=["fds"], leak_span=1)
    def handler(event: Any, context: Any) -> Any:
        kept.append(open(os.devnull))  # the leak the queries find
        return event

    with caplog.at_level(logging.WARNING, logger="safehandler"):
        for n in range(4):
            handler(n, None)
    for f in kept:
        f.close()
    messages = [r.getMessage() for r in caplog.records if "safehandler.leak" in r.getMessage()]
    assert messages
    text = [f"[WARNING]\t2026-12-02T10:42:02.784Z\t4c077f88\t{m}" for m in messages]
    as_json = [json.dumps({"level": "WARNING", "message": m, "requestId": "4c"}) for m in messages]
    return text + as_json


def test_the_queries_patterns_read_real_finding_lines(finding_lines: list[str]) -> None:
    top, first, recycles = readme_queries()
    sites = _patterns(top)
    invocations = _patterns(first)
    assert set(sites) == {"kind", "site", "held"}
    half = len(finding_lines) // 2
    for line in finding_lines:
        assert re.search(r"safehandler\.leak", line)
        assert sites["kind"].search(line).group("kind") == "fd"  # type: ignore[union-attr]
        site = sites["site"].search(line).group("site")  # type: ignore[union-attr]
        assert site.endswith("test_fleet_docs.py:" + str(_leak_line()))
        held = int(sites["held"].search(line).group("held"))  # type: ignore[union-attr]
        at = int(invocations["at"].search(line).group("at"))  # type: ignore[union-attr]
        assert held >= 2
        assert at >= held  # the invocation of the report, never first_invocation's number
    plain = [int(invocations["at"].search(x).group("at")) for x in finding_lines[:half]]  # type: ignore[union-attr]
    escaped = [int(invocations["at"].search(x).group("at")) for x in finding_lines[half:]]  # type: ignore[union-attr]
    assert plain == escaped
    assert "recycling the environment" in recycles


def _leak_line() -> int:
    with open(__file__, encoding="utf-8") as own:
        lines = own.read().splitlines()
    return next(i for i, line in enumerate(lines, 1) if "kept.append(open(os.devnull))" in line)


def test_the_recycle_query_matches_the_line_recycle_logs() -> None:
    source = (ROOT / "safehandler" / "recycle.py").read_text(encoding="utf-8")
    assert '"safehandler: recycling the environment (%s): %s"' in source


def test_the_alarm_names_the_metric_and_dimension_we_emit() -> None:
    from safehandler import _fleet
    from safehandler._records import InvocationStats

    emitted = {m.name for m in _fleet.figures(InvocationStats(1, 9, 1, 1, False, 0, 0), 2, "")}
    assert "FdShare" in emitted
    for text in (SAM, CDK.read_text(encoding="utf-8"), _fleet_section()):
        assert "FdShare" in text
        assert "function_name" in text
        assert "safehandler" in text
    ast.parse(CDK.read_text(encoding="utf-8"))

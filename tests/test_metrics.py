"""The fleet view: EMF documents valid by the spec, the rate rule, Powertools' serializer,
OpenTelemetry instruments, and nothing at all when metrics are off."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

import safehandler
from safehandler import _emf, _fleet
from safehandler._records import Finding, InvocationStats, Site
from safehandler.guard import engine_of

from .emf_spec import EMFError, emf_lines, metric_values, parse_line, validate

FUNCTION = "orders-api"


@pytest.fixture(autouse=True)
def _lambda_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SAFEHANDLER_METRICS", "SAFEHANDLER_METRICS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
    monkeypatch.setenv("SAFEHANDLER_HEALTH_FILE", "off")


# -- the validator itself: every rule can fail --------------------------------------------

SPEC_EXAMPLE = {
    "_aws": {
        "Timestamp": 1574109732004,
        "CloudWatchMetrics": [
            {
                "Namespace": "lambda-function-metrics",
                "Dimensions": [["functionVersion"]],
                "Metrics": [{"Name": "time", "Unit": "Milliseconds"}],
            }
        ],
    },
    "functionVersion": "$LATEST",
    "time": 100,
    "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee",
}


def _broken(change: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(SPEC_EXAMPLE))
    change(doc)
    return doc


def _directive(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["_aws"]["CloudWatchMetrics"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("_aws"), "_aws"),
        (lambda d: d["_aws"].pop("Timestamp"), "Timestamp"),
        (lambda d: d["_aws"].update(Timestamp="1574109732004"), "Timestamp"),
        (lambda d: d["_aws"].update(CloudWatchMetrics={}), "CloudWatchMetrics"),
        (lambda d: _directive(d).pop("Namespace"), "Namespace is required"),
        (lambda d: _directive(d).update(Namespace=""), "Namespace"),
        (lambda d: _directive(d).update(Namespace="n" * 256), "Namespace"),
        (lambda d: _directive(d).update(Dimensions=[]), "Dimensions"),
        (lambda d: d.pop("functionVersion"), "not a member of the root"),
        (lambda d: d.update(functionVersion=1), "the target is a string"),
        (lambda d: _directive(d).update(Dimensions=[[f"d{i}" for i in range(31)]]), "30 keys"),
        (lambda d: _directive(d)["Metrics"][0].update(Unit="ms"), "unit 'ms'"),
        (lambda d: _directive(d)["Metrics"][0].update(StorageResolution=30), "resolution"),
        (lambda d: d.update(time="100"), "numeric"),
        (lambda d: d.update(time=True), "numeric"),
        (lambda d: d.update(time=list(range(101))), "at most 100 values"),
        (lambda d: d.pop("time"), "not a member of the root"),
        (
            lambda d: _directive(d).update(
                Metrics=[{"Name": f"m{i}", "Unit": "Count"} for i in range(101)]
            ),
            "at most 100 MetricDefinitions",
        ),
    ],
)
def test_the_validator_refuses_what_the_spec_refuses(change: Any, message: str) -> None:
    validate(json.loads(json.dumps(SPEC_EXAMPLE)))  # the spec's own example passes
    with pytest.raises(EMFError, match=message):
        validate(_broken(change))


def test_the_validator_refuses_a_line_with_more_than_the_object() -> None:
    line = json.dumps(SPEC_EXAMPLE)
    assert parse_line(line) == SPEC_EXAMPLE
    for bad in (line + " trailing", "START " + line, "[" + line + "]"):
        with pytest.raises(EMFError):
            parse_line(bad)


# -- the writer ---------------------------------------------------------------------------


def test_a_document_is_one_valid_line_with_properties_beside_the_metrics() -> None:
    doc = _emf.document(
        "safehandler",
        {"function_name": FUNCTION},
        [_emf.Metric("OpenFds", "Count", 12), _emf.Metric("FdShare", "Percent", 1.17)],
        {"pid": 8, "sites": [{"site": "app.py:12", "count": 3}]},
        timestamp_ms=1_700_000_000_000,
    )
    line = _emf.dumps(doc)
    assert "\n" not in line
    assert validate(parse_line(line)) == {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "safehandler",
                    "Dimensions": [["function_name"]],
                    "Metrics": [
                        {"Name": "OpenFds", "Unit": "Count"},
                        {"Name": "FdShare", "Unit": "Percent"},
                    ],
                }
            ],
        },
        "OpenFds": 12,
        "FdShare": 1.17,
        "function_name": FUNCTION,
        "pid": 8,
        "sites": [{"site": "app.py:12", "count": 3}],
    }


def test_the_writer_refuses_documents_past_the_formats_limits() -> None:
    one = [_emf.Metric("M", "Count", 1)]
    dims = {f"d{i}": "v" for i in range(31)}
    with pytest.raises(ValueError, match="1 to 100 metrics"):
        _emf.document("ns", {}, [_emf.Metric(f"m{i}", "Count", 1) for i in range(101)])
    with pytest.raises(ValueError, match="at most 30 dimensions"):
        _emf.document("ns", dims, one)
    with pytest.raises(ValueError, match="unit 'Milliseconds ' is not"):
        _emf.document("ns", {}, [_emf.Metric("M", "Milliseconds ", 1)])
    with pytest.raises(ValueError, match="would shadow"):
        _emf.document("ns", {"function_name": "f"}, one, {"function_name": "g"})
    with pytest.raises(ValueError, match="namespace"):
        _emf.document("", {}, one)
    # exactly at the limits: valid
    at_limit = _emf.document(
        "ns",
        {f"d{i}": "v" for i in range(30)},
        [_emf.Metric(f"m{i}", "Count", i) for i in range(100)],
    )
    validate(at_limit)


# -- the publisher, driven directly: the rate rule -----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """What the publisher reads of an engine."""

    def __init__(self, memory_limit: int | None = 512 * 2**20) -> None:
        self.unhealthy_since: int | None = None
        self.memory_limit = memory_limit


class Seen:
    def __init__(self, stats: InvocationStats, findings: list[Finding] | None = None) -> None:
        self.stats = stats
        self.findings = findings or []


def _stats(n: int, fds: int = 10, rss: int = 100 * 2**20, threads: int = 1) -> InvocationStats:
    return InvocationStats(n, fds, threads, rss, False, 0, 0)


def _publisher(**policy: Any) -> tuple[_fleet.FleetMetrics, list[str], Clock, Source]:
    lines: list[str] = []
    clock, source = Clock(), Source()
    publisher = _fleet.FleetMetrics(
        safehandler.Policy(metrics="emf", **policy), source, writer=lines.append, clock=clock
    )
    return publisher, lines, clock, source


def _triggers(lines: list[str]) -> list[tuple[int, str]]:
    docs = [validate(parse_line(line)) for line in lines]
    return [(doc["invocation"], doc["trigger"]) for doc in docs if "kind" not in doc]


def test_first_invocation_then_change_checks_every_100_then_a_heartbeat_every_60_s() -> None:
    publisher, lines, clock, _ = _publisher()
    for n in range(1, 251):  # steady: nothing moves, no time passes
        publisher(Seen(_stats(n)))
    assert _triggers(lines) == [(1, "first")]
    publisher(Seen(_stats(251, fds=11)))  # a figure moved: told at the next change check
    for n in range(252, 302):
        publisher(Seen(_stats(n, fds=11)))
    assert _triggers(lines) == [(1, "first"), (301, "change")]
    clock.now += 59.9
    publisher(Seen(_stats(302, fds=11)))
    clock.now += 0.1
    publisher(Seen(_stats(303, fds=11)))
    assert _triggers(lines)[-1] == (303, "heartbeat")


def test_rss_moves_only_beyond_the_tolerance() -> None:
    publisher, lines, _, _ = _publisher()
    publisher(Seen(_stats(1)))
    # 512 MiB limit: the tolerance is max(2 MiB, 5.12 MiB)
    for n in range(2, 202):
        publisher(Seen(_stats(n, rss=100 * 2**20 + 5 * 2**20)))
    assert _triggers(lines) == [(1, "first")]
    for n in range(202, 302):
        publisher(Seen(_stats(n, rss=100 * 2**20 + 6 * 2**20)))
    assert _triggers(lines) == [(1, "first"), (301, "change")]


def test_an_unhealthy_mark_and_a_recycle_are_told_at_once() -> None:
    publisher, lines, _, source = _publisher()
    publisher(Seen(_stats(1)))
    publisher(Seen(_stats(2, fds=600)))
    source.unhealthy_since = 3
    publisher(Seen(_stats(3, fds=601)))
    _fleet.before_recycle(["601 open fds > 50% of RLIMIT_NOFILE 1024"])
    assert _triggers(lines) == [(1, "first"), (3, "unhealthy"), (3, "recycle")]
    docs = [json.loads(line) for line in lines]
    assert [metric_values(d)["UnhealthyMarks"] for d in docs] == [0, 1, 0]
    assert [metric_values(d)["Recycles"] for d in docs] == [0, 0, 1]
    assert docs[-1]["reasons"] == ["601 open fds > 50% of RLIMIT_NOFILE 1024"]
    assert metric_values(docs[-1])["OpenFds"] == 601


def _finding(kind: Any, n: int, site: Site | None) -> Finding:
    return Finding(kind, 3, site, 1, "3 sockets", invocation=n)


def test_findings_are_counted_by_kind_with_their_sites_as_properties() -> None:
    publisher, lines, _, _ = _publisher()
    publisher(Seen(_stats(1)))
    app = Site("/var/task/app.py", 12, "handler")
    publisher(Seen(_stats(2), [_finding("socket", 2, app), _finding("thread", 2, None)]))
    publisher(Seen(_stats(3), [_finding("socket", 3, app)]))
    for n in range(4, 102):
        publisher(Seen(_stats(n)))
    docs = [validate(parse_line(line)) for line in lines]
    by_kind = [d for d in docs if "kind" in d]
    assert [(d["kind"], d["Findings"], d["invocation"]) for d in by_kind] == [
        ("socket", 2, 101),
        ("thread", 1, 101),
    ]
    socket_doc = by_kind[0]
    assert socket_doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["function_name"],
        ["function_name", "kind"],
    ]
    # the group's count as last reported (3 in each report here), not a sum of reports
    assert socket_doc["sites"] == [{"site": "/var/task/app.py:12", "count": 3}]
    # never a site, a pid or an invocation as a dimension
    for doc in docs:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert {k for keys in directive["Dimensions"] for k in keys} <= {
                "function_name",
                "kind",
            }


def test_a_writer_that_breaks_switches_metrics_off_and_the_handler_is_untouched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(line: str) -> None:
        raise OSError("stdout closed")

    @safehandler.guard(metrics="emf")
    def handler(event: Any, context: Any) -> Any:
        return event

    engine = engine_of(handler)
    assert engine is not None
    assert engine.metrics is not None
    engine.metrics._write = broken
    assert [handler(n, None) for n in range(3)] == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if "metrics failed" in r.getMessage()]
    assert len(warnings) == 1


# -- through the decorator: stdout, as on Lambda -------------------------------------------


def test_metrics_off_is_no_observer_and_no_import(capsys: pytest.CaptureFixture[str]) -> None:
    @safehandler.guard
    def handler(event: Any, context: Any) -> Any:
        return event

    engine = engine_of(handler)
    assert engine is not None
    assert (engine.metrics, engine._observers) == (None, [])
    handler({}, None)
    assert emf_lines(capsys.readouterr().out) == []


def test_1500_clean_invocations_write_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    @safehandler.guard(metrics="emf")
    def handler(event: Any, context: Any) -> Any:
        return {"ok": True}

    for _ in range(1500):
        handler({}, None)
    docs = emf_lines(capsys.readouterr().out)
    # the stated maximum, 3 + n // 100 + t // 60, is met with room: nothing moved
    assert [(d["trigger"], d["invocation"]) for d in docs] == [("first", 1)]
    doc = docs[0]
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "safehandler"
    assert doc["function_name"] == FUNCTION
    values = metric_values(doc)
    assert {"OpenFds", "FdShare", "Rss", "Threads", "DbConnections"} <= set(values)
    assert values["FdShare"] == round(100 * values["OpenFds"] / doc["fd_limit"], 2)


def test_1500_leaking_invocations_stay_within_the_stated_maximum(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kept: list[Any] = []

    @safehandler.guard(metrics="emf", fd_threshold=1.0, probes=["fds"])
    def handler(event: Any, context: Any) -> Any:
        kept.append(open(os.devnull))  # the leak under test
        return {"ok": True}

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    try:
        started = time.monotonic()
        for _ in range(1500):
            handler({}, None)
        elapsed = time.monotonic() - started
    finally:
        for f in kept:
            f.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    docs = emf_lines(capsys.readouterr().out)
    figures = [d for d in docs if "kind" not in d]
    # the stated maximum: 3 + n // 100 + t // 60 documents of figures
    assert len(figures) <= 3 + 1500 // 100 + int(elapsed // 60)
    if elapsed < 60:  # no heartbeat: the first, then a change check every 100
        assert [d["invocation"] for d in figures] == [1, *range(101, 1501, 100)]
        assert [d["trigger"] for d in figures] == ["first"] + ["change"] * 14
    fds = [metric_values(d)["OpenFds"] for d in figures]
    assert fds[1] - fds[0] == 100  # one file per invocation since the first
    kinds = [d for d in docs if "kind" in d]
    assert {d["kind"] for d in kinds} == {"fd"}
    assert kinds[0]["sites"][0]["site"].endswith(f"test_metrics.py:{_line_of_leak()}")


def _line_of_leak() -> int:
    with open(__file__, encoding="utf-8") as own:
        source = own.read().splitlines()
    return next(i for i, line in enumerate(source, 1) if "kept.append(open(os.devnull))" in line)


def test_the_namespace_setting_then_powertools_variable_then_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def namespace_of_first_line(**settings: Any) -> str:
        handler = safehandler.guard(lambda event, context: event, **settings)
        handler({}, None)
        [doc] = emf_lines(capsys.readouterr().out)
        return doc["_aws"]["CloudWatchMetrics"][0]["Namespace"]  # type: ignore[no-any-return]

    assert namespace_of_first_line(metrics="emf") == "safehandler"
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Orders")
    assert namespace_of_first_line(metrics="emf") == "Orders"
    monkeypatch.setenv("SAFEHANDLER_METRICS_NAMESPACE", "Fleet/Health")
    assert namespace_of_first_line(metrics="emf") == "Fleet/Health"
    assert namespace_of_first_line(metrics="emf", metrics_namespace="Mine") == "Mine"


# -- Powertools: its serializer writes the document ---------------------------------------


@pytest.fixture
def powertools_serialized(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every document Powertools' EMF serializer produced while the test ran."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch

    produced: list[dict[str, Any]] = []
    real = cloudwatch.AmazonCloudWatchEMFProvider.serialize_metric_set

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = real(self, *args, **kwargs)
        produced.append(json.loads(json.dumps(out)))
        return out

    monkeypatch.setattr(cloudwatch.AmazonCloudWatchEMFProvider, "serialize_metric_set", spy)
    return produced


def test_a_powertools_metrics_given_serializes_our_documents(
    powertools_serialized: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aws_lambda_powertools import Metrics

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "orders")  # must not become our dimension
    users = Metrics(namespace="Orders")
    kept: list[Any] = []

    @safehandler.guard(metrics=users)  # switches the fleet view on
    def handler(event: Any, context: Any) -> Any:
        kept.append(open(os.devnull))  # the leak under test
        return event

    try:
        for n in range(101):
            handler(n, None)
    finally:
        for f in kept:
            f.close()
    docs = emf_lines(capsys.readouterr().out)
    assert len(docs) >= 3  # first; at 101: the figures and the fd findings
    assert docs == powertools_serialized  # every line is what Powertools produced
    first = docs[0]
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Orders"
    assert first["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["function_name"]]
    assert isinstance(first["OpenFds"], list)  # Powertools writes values as arrays
    fd_doc = next(d for d in docs if d.get("kind") == "fd")
    assert fd_doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["function_name"],
        ["function_name", "kind"],
    ]
    assert users.metric_set == {}  # nothing mixed into the user's own metrics


def test_metrics_takes_a_setting_or_a_powertools_metrics_and_nothing_else() -> None:
    with pytest.raises(safehandler.ConfigError, match=r"^metrics=.*: must be off, emf, otel or"):
        safehandler.guard(lambda e, c: e, metrics=object())
    with pytest.raises(safehandler.ConfigError, match=r"^metrics='emff'"):
        safehandler.guard(lambda e, c: e, metrics="emff")


# -- OpenTelemetry --------------------------------------------------------------------------


def test_opentelemetry_instruments_carry_the_same_figures() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = sdk.MeterProvider(metric_readers=[reader])
    lines: list[str] = []
    source = Source()
    publisher = _fleet.FleetMetrics(
        safehandler.Policy(metrics="on"),
        source,
        writer=lines.append,
        meter_provider=provider,
    )
    publisher(Seen(_stats(1, fds=40)))
    publisher(Seen(_stats(2, fds=41), [_finding("fd", 2, None)]))
    source.unhealthy_since = 3
    publisher(Seen(_stats(3, fds=42)))
    publisher.recycling(["x"])
    points = _points(reader)
    assert points["safehandler.fds"] == [({}, 42)]
    fd_limit = json.loads(lines[-1])["fd_limit"]
    assert points["safehandler.fd_share"] == [({}, pytest.approx(42 / fd_limit, abs=1e-4))]
    assert points["safehandler.rss"] == [({}, 100 * 2**20)]
    assert points["safehandler.memory_share"] == [({}, pytest.approx(100 / 512, abs=1e-4))]
    assert points["safehandler.threads"] == [({}, 1)]
    assert points["safehandler.findings"] == [({"kind": "fd"}, 1)]
    assert points["safehandler.unhealthy_marks"] == [({}, 1)]
    assert points["safehandler.recycles"] == [({}, 1)]
    provider.shutdown()


def _points(reader: Any) -> dict[str, list[tuple[dict[str, Any], float]]]:
    out: dict[str, list[tuple[dict[str, Any], float]]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = [
                    (dict(point.attributes), point.value) for point in metric.data.data_points
                ]
    return out


OTEL_SCRIPT = """
import json, os, sys
{setup}
import safehandler

handler = safehandler.guard(lambda event, context: event, metrics={mode!r})
for n in range(3):
    handler(n, None)
from safehandler.guard import engine_of
metrics = engine_of(handler).metrics
print(json.dumps({{
    "otel": metrics._otel is not None,
    "loaded": "opentelemetry" in sys.modules,
    "points": {points},
}}))
"""

SDK_SETUP = """
from opentelemetry import metrics as otel
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
reader = InMemoryMetricReader()
otel.set_meter_provider(MeterProvider(metric_readers=[reader]))
"""

SDK_POINTS = (
    "{m.name: m.data.data_points[0].value for rm in reader.get_metrics_data().resource_metrics"
    " for sm in rm.scope_metrics for m in sm.metrics}"
)


def _run(setup: str, mode: str, points: str = "None") -> dict[str, Any]:
    script = OTEL_SCRIPT.format(setup=textwrap.dedent(setup), mode=mode, points=points)
    env = {**os.environ, "SAFEHANDLER_HEALTH_FILE": "off"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_global_meter_provider_is_used_when_one_is_set_up() -> None:
    pytest.importorskip("opentelemetry.sdk.metrics")
    result = _run(SDK_SETUP, "otel", SDK_POINTS)
    assert result["otel"] is True
    assert result["points"]["safehandler.threads"] >= 1
    assert result["points"]["safehandler.fds"] > 0


def test_no_provider_set_up_no_instruments_and_on_imports_nothing() -> None:
    # the API alone hands out a no-op proxy: recording into it would be wasted work
    assert _run("from opentelemetry import metrics", "otel")["otel"] is False
    # "on" without OpenTelemetry loaded by anyone: EMF only, and no import of it
    assert _run("", "on") == {"otel": False, "loaded": False, "points": None}


def test_the_writers_units_are_exactly_the_specs() -> None:
    from .emf_spec import UNIT_PATTERN

    assert all(UNIT_PATTERN.match(unit) for unit in _emf.UNITS)
    assert len(_emf.UNITS) == UNIT_PATTERN.pattern.count("|") + 1

"""A minimal CloudWatch Embedded Metric Format (EMF) writer: no dependency, one JSON line.

An EMF document is a log line that CloudWatch Logs turns into metrics, with no API call::

    {"_aws": {"Timestamp": 1700000000000,
              "CloudWatchMetrics": [{"Namespace": "safehandler",
                                     "Dimensions": [["function_name"]],
                                     "Metrics": [{"Name": "OpenFds", "Unit": "Count"}]}]},
     "function_name": "orders", "OpenFds": 12, "pid": 8}

Dimension values and metric values are members of the root object, named by the directive;
anything else at the root (``pid`` above) is a property: searchable in Logs Insights, never
part of a metric's identity. On Lambda, a document printed to stdout is enough: the runtime
ships it to CloudWatch Logs, which extracts the metrics.

The limits of the format are checked here, so a bad document is an error in our tests, not a
metric silently dropped in production: at most 100 metrics per directive, at most 30
dimensions per dimension set, units from CloudWatch's list.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from ._tuple import NamedTuple

__all__ = [
    "MAX_DIMENSIONS",
    "MAX_METRICS",
    "UNITS",
    "Metric",
    "Writer",
    "document",
    "dumps",
    "stdout_writer",
]

MAX_METRICS = 100  # MetricDefinitions per directive
MAX_DIMENSIONS = 30  # dimension keys per DimensionSet
MAX_NAME = 255  # characters in a namespace, metric name or dimension key
# CloudWatch's metric units (MetricDatum.Unit), as the format's schema lists them
UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)

Writer = Callable[[str], None]


class Metric(NamedTuple):
    """One metric value of a document."""

    name: str
    unit: str
    value: float


def document(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Sequence[Metric],
    properties: Mapping[str, Any] | None = None,
    *,
    dimension_sets: Sequence[Sequence[str]] | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """One EMF document: ``metrics`` under ``dimension_sets`` (default: all ``dimensions`` as
    one set), with ``properties`` beside them. Raises ``ValueError`` past the format's limits
    or when a property would shadow a dimension or a metric."""
    if not 0 < len(namespace) <= MAX_NAME:
        raise ValueError(f"EMF namespace {namespace!r}: 1 to {MAX_NAME} characters")
    if not 0 < len(metrics) <= MAX_METRICS:
        raise ValueError(f"EMF: 1 to {MAX_METRICS} metrics per document, not {len(metrics)}")
    sets = [list(dimensions)] if dimension_sets is None else [list(s) for s in dimension_sets]
    for keys in sets:
        if len(keys) > MAX_DIMENSIONS:
            raise ValueError(f"EMF: at most {MAX_DIMENSIONS} dimensions per set, not {len(keys)}")
        missing = [key for key in keys if key not in dimensions]
        if missing:
            raise ValueError(f"EMF: dimension set names no value for {missing}")
    root: dict[str, Any] = {}
    definitions = []
    for metric in metrics:
        if metric.unit not in UNITS:
            raise ValueError(f"EMF metric {metric.name!r}: unit {metric.unit!r} is not one of ours")
        if not 0 < len(metric.name) <= MAX_NAME or metric.name in root:
            raise ValueError(f"EMF metric name {metric.name!r}: empty, too long or repeated")
        definitions.append({"Name": metric.name, "Unit": metric.unit})
        root[metric.name] = metric.value
    for key, value in dimensions.items():
        if key in root or not isinstance(value, str):
            raise ValueError(f"EMF dimension {key!r}: a string, and not a metric's name")
        root[key] = value
    for key, value in (properties or {}).items():
        if key in root or key == "_aws":
            raise ValueError(f"EMF property {key!r} would shadow a metric or a dimension")
        root[key] = value
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    directive = {"Namespace": namespace, "Dimensions": sets, "Metrics": definitions}
    return {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": [directive]}, **root}


def dumps(doc: Mapping[str, Any]) -> str:
    """The document as one line of JSON (nothing before or after it, as the format asks)."""
    import json  # 1.6 ms of cold start: loaded with the first document

    return json.dumps(doc, separators=(",", ":"), default=str)


def stdout_writer(line: str) -> None:
    """Lambda ships stdout to CloudWatch Logs line by line: one write, flushed now (a frozen
    or recycled environment must not keep the line in a buffer)."""
    stream = sys.stdout
    stream.write(line + "\n")
    stream.flush()

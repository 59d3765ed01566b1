"""A validator for CloudWatch Embedded Metric Format documents, written from the published spec
("Specification: Embedded metric format", CloudWatch User Guide), not from our writer.

What it checks, in the spec's words where it has them:

- the log event is one JSON object, with no additional data before or after it;
- the root has ``_aws``, an object with ``Timestamp`` (an integer: milliseconds since the epoch)
  and ``CloudWatchMetrics``, an array of MetricDirective objects;
- a MetricDirective has ``Namespace`` (a string, 1 to 255 characters), ``Dimensions`` (an array
  of at least one DimensionSet) and ``Metrics`` (an array of MetricDefinition objects that
  "MUST NOT contain more than 100");
- a DimensionSet is an array of strings, dimension keys that "MUST also be members on the
  root node", at most 30 of them; a dimension target "MUST have a string value";
- a MetricDefinition has ``Name`` (a string, 1 to 255) referencing a root member, and may have
  ``Unit`` (one of CloudWatch's units; the schema's pattern) and ``StorageResolution`` (1 or 60);
- a metric target "MUST be a numeric value or an array of numeric values", the array of at most
  100 members; targets are root members, never nested;
- the event is within the CloudWatch Logs event limit (256 KB).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["EMFError", "metric_values", "parse_line", "validate"]

# the schema's Unit pattern, as published
UNIT_PATTERN = re.compile(
    r"^(Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits"
    r"|Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes\/Second|Kilobytes\/Second"
    r"|Megabytes\/Second|Gigabytes\/Second|Terabytes\/Second|Bits\/Second|Kilobits\/Second"
    r"|Megabits\/Second|Gigabits\/Second|Terabits\/Second|Count\/Second|None)$"
)
MAX_METRICS = 100
MAX_DIMENSIONS = 30
MAX_VALUES = 100
MAX_EVENT_BYTES = 256 * 1024


class EMFError(AssertionError):
    """The document breaks the spec (an AssertionError: pytest shows it as a failure)."""


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise EMFError(message)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 255


def parse_line(line: str) -> dict[str, Any]:
    """One log event's text -> the document; the whole line must be the one JSON object."""
    _need(len(line.encode()) <= MAX_EVENT_BYTES, "over the 256 KB log event limit")
    try:
        doc = json.loads(line)  # json.loads refuses anything after the object
    except ValueError as exc:
        raise EMFError(f"not one JSON object: {exc}") from exc
    _need(isinstance(doc, dict), "the root node must be an object")
    _need(line.strip().startswith("{"), "data before the object")
    return doc


def validate(doc: dict[str, Any]) -> dict[str, Any]:
    """Raise ``EMFError`` where ``doc`` breaks the spec; return it."""
    _need(isinstance(doc, dict), "the root node must be an object")
    meta = doc.get("_aws")
    _need(isinstance(meta, dict), "_aws: required, an object")
    stamp = meta.get("Timestamp")
    _need(
        isinstance(stamp, int) and not isinstance(stamp, bool) and stamp >= 0,
        "Timestamp: an integer",
    )
    directives = meta.get("CloudWatchMetrics")
    _need(isinstance(directives, list), "CloudWatchMetrics: required, an array")
    for directive in directives:
        _need(isinstance(directive, dict), "a MetricDirective is an object")
        for member in ("Namespace", "Dimensions", "Metrics"):
            _need(member in directive, f"MetricDirective: {member} is required")
        _need(_is_name(directive["Namespace"]), "Namespace: a string of 1 to 255 characters")
        sets = directive["Dimensions"]
        _need(isinstance(sets, list) and len(sets) >= 1, "Dimensions: an array of DimensionSets")
        for keys in sets:
            _need(isinstance(keys, list), "a DimensionSet is an array")
            _need(len(keys) <= MAX_DIMENSIONS, f"a DimensionSet has at most {MAX_DIMENSIONS} keys")
            for key in keys:
                _need(_is_name(key), f"dimension key {key!r}: a string of 1 to 255 characters")
                _need(key in doc, f"dimension {key!r}: not a member of the root node")
                _need(isinstance(doc[key], str), f"dimension {key!r}: the target is a string")
        metrics = directive["Metrics"]
        _need(isinstance(metrics, list), "Metrics: an array")
        _need(len(metrics) <= MAX_METRICS, f"at most {MAX_METRICS} MetricDefinitions")
        for definition in metrics:
            _need(isinstance(definition, dict), "a MetricDefinition is an object")
            name = definition.get("Name")
            _need(_is_name(name), "MetricDefinition: Name, a string of 1 to 255 characters")
            if "Unit" in definition:
                unit = definition["Unit"]
                _need(
                    isinstance(unit, str) and UNIT_PATTERN.match(unit) is not None,
                    f"{name}: unit {unit!r}",
                )
            if "StorageResolution" in definition:
                _need(definition["StorageResolution"] in (1, 60), f"{name}: resolution 1 or 60")
            _need(name in doc, f"metric {name!r}: not a member of the root node")
            target = doc[name]
            if isinstance(target, list):
                _need(len(target) <= MAX_VALUES, f"{name}: at most {MAX_VALUES} values")
                _need(all(_is_number(v) for v in target), f"{name}: numeric values")
            else:
                _need(_is_number(target), f"metric {name!r}: the target is numeric")
    return doc


def metric_values(doc: dict[str, Any]) -> dict[str, float]:
    """Each metric a directive names -> its value (the first of an array)."""
    out = {}
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for definition in directive["Metrics"]:
            value = doc[definition["Name"]]
            out[definition["Name"]] = value[0] if isinstance(value, list) else value
    return out


def emf_lines(text: str) -> list[dict[str, Any]]:
    """The EMF documents among log lines (each validated); other lines are skipped."""
    return [
        validate(parse_line(line))
        for line in text.splitlines()
        if '"_aws"' in line and line.lstrip().startswith("{")
    ]

"""The fleet view: each environment's figures as CloudWatch metrics, at a low, bounded rate.

One function runs in many execution environments at once; each one's findings are log lines,
but an operator needs the fleet: how many environments are near their fd or memory limit, how
many were recycled, which kind of leak is everywhere. ``FleetMetrics`` is an engine observer
that turns an environment's figures into EMF documents (``_emf``; or Powertools' serializer
when a Powertools ``Metrics`` is given) and, where an OpenTelemetry meter provider is set up,
OpenTelemetry instruments (``_fleet_otel``).

The rate rule: a document is written

- at the first invocation (every environment shows up at once);
- at the invocation that marks the environment unhealthy, and before a recycle (the two events
  an operator alarms on must never wait);
- at most every ``HEARTBEAT_S`` (60) seconds, checked at invocations, so a metric does not go
  missing for an alarm while an environment is busy and steady;
- every ``CHANGE_EVERY`` (100) invocations after the last document, if a figure moved: fds,
  threads or DB connections by one or more, RSS by more than ``max(2 MiB, 1% of the memory
  limit)``, or findings were reported meanwhile.

So an environment that serves ``n`` invocations over ``t`` seconds writes at most
``3 + n // 100 + t // 60`` documents of figures (1,500 clean invocations within a minute:
exactly one), plus one document per kind of finding when findings were reported since the
previous document. Nothing runs between invocations (the environment is frozen there).

Dimensions are few and of low cardinality: ``function_name`` on every metric, and ``kind`` on
the findings count. Sites, pid and invocation numbers are properties: searchable in Logs
Insights, never part of a metric's identity (every distinct dimension value is a billed
custom metric).
"""

from __future__ import annotations

import os
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from . import _emf
from ._constants import LAMBDA_FUNCTION_NAME, POWERTOOLS_METRICS_NAMESPACE, RESTARTS
from ._records import Finding, InvocationStats
from ._redact import redact_obj
from ._warn import warn
from .policy import Policy

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Source(Protocol):
        """What the publisher reads of the engine, beyond each invocation's stats."""

        @property
        def unhealthy_since(self) -> int | None: ...

        @property
        def memory_limit(self) -> int | None: ...

    class Observed(Protocol):
        """What the engine tells its observers after each invocation (``_engine.Invocation``)."""

        @property
        def stats(self) -> InvocationStats: ...

        @property
        def findings(self) -> list[Finding]: ...


__all__ = ["CHANGE_EVERY", "HEARTBEAT_S", "FleetMetrics", "before_recycle", "install"]

CHANGE_EVERY = 100  # invocations between change checks
HEARTBEAT_S = 60.0  # seconds between documents at most, while invocations come
DEFAULT_NAMESPACE = "safehandler"
EVENT = "safehandler.metrics"  # the ``event`` property: what Logs Insights filters on
_MIB = 1 << 20
_TOP_SITES = 5

# live publishers, told before a recycle (weak: a discarded handler's engine goes away)
_publishers: weakref.WeakSet[FleetMetrics] = weakref.WeakSet()


def install(policy: Policy, source: Source, powertools: Any = None) -> FleetMetrics | None:
    """The publisher the engine observes with, or None when metrics are off (zero work)."""
    if policy.metrics == "off":
        return None
    try:
        return FleetMetrics(policy, source, powertools=powertools)
    except Exception as exc:  # noqa: BLE001 - fail open: metrics are a courtesy
        warn("safehandler: metrics are off: %r", exc)
        return None


def before_recycle(reasons: Sequence[str] = ()) -> None:
    """The environment is about to exit: every publisher writes its last document now."""
    for publisher in list(_publishers):
        publisher.recycling(reasons)


def resolve_namespace(policy: Policy, powertools: Any = None) -> str:
    """``metrics_namespace``; auto: Powertools' namespace variable, else the namespace of the
    ``Metrics`` given, else ``safehandler``."""
    if policy.metrics_namespace is not None:
        return policy.metrics_namespace
    named = os.environ.get(POWERTOOLS_METRICS_NAMESPACE, "").strip()
    if named:
        return named
    given = getattr(powertools, "namespace", None)
    return given if isinstance(given, str) and given.strip() else DEFAULT_NAMESPACE


class FleetMetrics:
    """An engine observer that publishes the environment's figures (see the module's rule)."""

    def __init__(
        self,
        policy: Policy,
        source: Source,
        *,
        powertools: Any = None,
        writer: _emf.Writer | None = None,
        clock: Callable[[], float] = time.monotonic,
        meter_provider: Any = None,
    ) -> None:
        self.namespace = resolve_namespace(policy, powertools)
        self.function_name = os.environ.get(LAMBDA_FUNCTION_NAME) or "local"
        self.documents = 0  # written so far (EMF)
        self._source = source
        self._clock = clock
        self._write = writer or _emf.stdout_writer
        self._emf = policy.metrics in ("emf", "on")
        self._powertools = powertools is not None
        self._otel: Any = None
        if policy.metrics in ("otel", "on"):
            from . import _fleet_otel

            # "on": only where OpenTelemetry is loaded already (the ADOT layer's set-up);
            # "otel": import it, the user asked for it
            self._otel = _fleet_otel.meter_for(
                self, provider=meter_provider, load=policy.metrics == "otel"
            )
        self._latest: InvocationStats | None = None
        self._sent: InvocationStats | None = None  # the figures of the last document
        self._sent_at = 0.0
        self._countdown = CHANGE_EVERY
        self._pending: Counter[str] = Counter()  # findings by kind since the last document
        self._sites: dict[str, Counter[str]] = {}
        self._broken = False
        _publishers.add(self)

    # -- the observer: once per invocation ---------------------------------------------

    def __call__(self, observed: Observed) -> None:
        if self._broken:
            return
        try:
            self._observe(observed.stats, observed.findings)
        except Exception as exc:  # noqa: BLE001 - fail open: metrics are a courtesy
            self._broken = True
            warn("safehandler: metrics failed and are now off: %r", exc, exc=exc)

    def _observe(self, stats: InvocationStats, findings: list[Finding]) -> None:
        self._latest = stats
        if findings:
            self._note(findings)
        unhealthy = self._source.unhealthy_since == stats.invocation
        if unhealthy and self._otel is not None:
            self._otel.unhealthy()
        if not self._emf:
            return
        if self._sent is None:
            self._publish(stats, "first")
        elif unhealthy:
            self._publish(stats, "unhealthy")
        elif self._clock() - self._sent_at >= HEARTBEAT_S:
            self._publish(stats, "heartbeat")
        else:
            self._countdown -= 1
            if self._countdown <= 0:
                if self._moved(stats):
                    self._publish(stats, "change")
                else:
                    self._countdown = CHANGE_EVERY

    def recycling(self, reasons: Sequence[str] = ()) -> None:
        """The last document, before the environment exits (from ``recycle``)."""
        if self._broken or self._latest is None:
            return
        try:
            if self._otel is not None:
                self._otel.recycled()
            if self._emf:
                self._publish(self._latest, "recycle", reasons=reasons)
        except Exception as exc:  # noqa: BLE001 - exiting anyway: say so, never block it
            warn("safehandler: metrics before the recycle failed: %r", exc)

    def current_figures(self) -> list[_emf.Metric]:
        """The figures after the latest invocation (none before the first)."""
        latest = self._latest
        return [] if latest is None else figures(latest, self._source.memory_limit, "")

    def _note(self, findings: list[Finding]) -> None:
        for finding in findings:
            self._pending[finding.kind] += 1
            if finding.site is not None:
                # a group is reported as it grows, each report with its count so far
                sites = self._sites.setdefault(finding.kind, Counter())
                where = finding.site.location
                sites[where] = max(sites[where], finding.count)
        if self._otel is not None:
            self._otel.findings(findings)

    def _moved(self, stats: InvocationStats) -> bool:
        sent = self._sent
        if sent is None or self._pending:
            return True
        if stats.fds != sent.fds or stats.threads != sent.threads or stats.db != sent.db:
            return True
        if stats.rss is None or sent.rss is None:
            return stats.rss != sent.rss
        limit = self._source.memory_limit
        tolerance = max(2 * _MIB, limit // 100 if limit else 0)
        return abs(stats.rss - sent.rss) > tolerance

    # -- the documents -----------------------------------------------------------------

    def _publish(self, stats: InvocationStats, trigger: str, reasons: Sequence[str] = ()) -> None:
        self._sent, self._sent_at, self._countdown = stats, self._clock(), CHANGE_EVERY
        properties: dict[str, Any] = {
            "event": EVENT,
            "trigger": trigger,
            "invocation": stats.invocation,
            "pid": os.getpid(),
        }
        restarts = os.environ.get(RESTARTS)
        if restarts:
            properties["restarts"] = restarts
        if reasons:
            properties["reasons"] = list(reasons)
        self._emit(
            {"function_name": self.function_name},
            figures(stats, self._source.memory_limit, trigger),
            properties | limits(self._source.memory_limit),
        )
        pending, self._pending = self._pending, Counter()
        sites, self._sites = self._sites, {}
        for kind, count in sorted(pending.items()):
            top = sites.get(kind, Counter()).most_common(_TOP_SITES)
            self._emit(
                {"function_name": self.function_name, "kind": kind},
                [_emf.Metric("Findings", "Count", count)],
                {**properties, "sites": [{"site": s, "count": c} for s, c in top]},
                dimension_sets=[["function_name"], ["function_name", "kind"]],
            )

    def _emit(
        self,
        dimensions: Mapping[str, str],
        metrics: list[_emf.Metric],
        properties: Mapping[str, Any],
        dimension_sets: list[list[str]] | None = None,
    ) -> None:
        if self._powertools:
            doc = _powertools_document(self.namespace, dimensions, metrics, properties)
        else:
            doc = _emf.document(
                self.namespace, dimensions, metrics, properties, dimension_sets=dimension_sets
            )
        self._write(_emf.dumps(redact_obj(doc)))  # the redaction boundary of metric lines
        self.documents += 1


def figures(stats: InvocationStats, memory_limit: int | None, trigger: str) -> list[_emf.Metric]:
    """The environment's figures after an invocation; a probe that is off gives none."""
    out = []
    if stats.fds is not None:
        out.append(_emf.Metric("OpenFds", "Count", stats.fds))
        fd_limit = _soft_fd_limit()
        if fd_limit:
            out.append(_emf.Metric("FdShare", "Percent", round(100 * stats.fds / fd_limit, 2)))
    if stats.rss is not None:
        out.append(_emf.Metric("Rss", "Bytes", stats.rss))
        if memory_limit:
            share = round(100 * stats.rss / memory_limit, 2)
            out.append(_emf.Metric("MemoryShare", "Percent", share))
    if stats.threads is not None:
        out.append(_emf.Metric("Threads", "Count", stats.threads))
    if stats.db is not None:
        out.append(_emf.Metric("DbConnections", "Count", stats.db))
    # events as counts, 0 or 1 in every document: Sum over a period counts them
    out.append(_emf.Metric("UnhealthyMarks", "Count", int(trigger == "unhealthy")))
    out.append(_emf.Metric("Recycles", "Count", int(trigger == "recycle")))
    return out


def limits(memory_limit: int | None) -> dict[str, Any]:
    return {"fd_limit": _soft_fd_limit(), "memory_limit": memory_limit}


def _soft_fd_limit() -> int | None:
    import resource  # an extension module: loaded with the first limit read

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _powertools_document(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: list[_emf.Metric],
    properties: Mapping[str, Any],
) -> dict[str, Any]:
    """The same document, built and serialized by Powertools: an ``EphemeralMetrics`` of our
    own, so nothing mixes into the user's metric set and no ``service`` dimension is added."""
    from aws_lambda_powertools.metrics import EphemeralMetrics

    built = EphemeralMetrics(namespace=namespace, service="")
    first, *more = dimensions.items()
    built.add_dimension(name=first[0], value=first[1])
    if more:  # a second set: the findings of one kind also count for the whole function
        built.add_dimensions(**dict(dimensions))
    for metric in metrics:
        built.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
    for key, value in properties.items():
        built.add_metadata(key=key, value=value)
    doc: dict[str, Any] = dict(built.serialize_metric_set())
    return doc

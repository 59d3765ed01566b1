"""The fleet view's figures as OpenTelemetry metrics, where a meter provider is set up.

The ADOT Lambda layer (or the user's own code) installs an SDK meter provider at start-up; the
API alone hands out a no-op proxy, and recording into that is wasted work, so nothing is
created then. The gauges are observed (``ObservableGauge``): the SDK reads the latest figures
when it collects, so an invocation only stores its stats. Findings, unhealthy marks and
recycles are counters, added to as they happen; before a recycle the provider is flushed.

The names follow OpenTelemetry's conventions (dotted, lower case, UCUM units); the function
name is the resource's ``faas.name``, which the Lambda resource detector sets: not repeated.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from ._records import Finding
from ._warn import warn

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

    from ._fleet import FleetMetrics

__all__ = ["OtelMetrics", "meter_for"]

_NO_OP = ("NoOpMeterProvider", "_ProxyMeterProvider", "ProxyMeterProvider")


def meter_for(fleet: FleetMetrics, *, provider: Any = None, load: bool) -> OtelMetrics | None:
    """Instruments on ``provider`` (default: the global one), or None where there is no real
    provider. ``load``: import OpenTelemetry if nothing did yet."""
    if provider is None:
        if not load and "opentelemetry.metrics" not in sys.modules:
            return None  # nobody set OpenTelemetry up: importing it would only cost
        try:
            from opentelemetry import metrics
        except ImportError:
            if load:
                warn("safehandler: metrics=otel, but opentelemetry-api is not installed")
            return None
        provider = metrics.get_meter_provider()
    if type(provider).__name__ in _NO_OP:
        if load:
            warn("safehandler: metrics=otel, but no OpenTelemetry meter provider is set up")
        return None
    return OtelMetrics(fleet, provider)


class OtelMetrics:
    """The instruments, on one meter."""

    def __init__(self, fleet: FleetMetrics, provider: Any) -> None:
        from opentelemetry.metrics import Observation

        self._fleet = fleet
        self._provider = provider
        self._observation = Observation
        meter = provider.get_meter("safehandler")
        gauges = (
            ("safehandler.fds", "{fd}", "open file descriptors", "OpenFds"),
            ("safehandler.fd_share", "1", "open fds / soft RLIMIT_NOFILE", "FdShare"),
            ("safehandler.rss", "By", "resident memory", "Rss"),
            ("safehandler.memory_share", "1", "RSS / the memory limit", "MemoryShare"),
            ("safehandler.threads", "{thread}", "live threads", "Threads"),
            ("safehandler.db_connections", "{connection}", "DB connections held", "DbConnections"),
        )
        for name, unit, description, figure in gauges:
            meter.create_observable_gauge(
                name, callbacks=[self._reader(figure)], unit=unit, description=description
            )
        self._findings = meter.create_counter(
            "safehandler.findings", unit="{finding}", description="findings reported, by kind"
        )
        self._unhealthy = meter.create_counter(
            "safehandler.unhealthy_marks", unit="{mark}", description="environments marked"
        )
        self._recycles = meter.create_counter(
            "safehandler.recycles", unit="{recycle}", description="environments recycled"
        )

    def _reader(self, figure: str) -> Any:
        def observe(options: Any) -> Iterator[Any]:
            for metric in self._fleet.current_figures():
                if metric.name == figure:
                    share = metric.unit == "Percent"  # OpenTelemetry says ratios in 1
                    yield self._observation(metric.value / 100 if share else metric.value)

        return observe

    def findings(self, findings: list[Finding]) -> None:
        for finding in findings:
            self._findings.add(1, {"kind": finding.kind})

    def unhealthy(self) -> None:
        self._unhealthy.add(1)

    def recycled(self) -> None:
        self._recycles.add(1)
        flush = getattr(self._provider, "force_flush", None)
        if flush is not None:
            flush(timeout_millis=2_000)  # the process exits next: export what we have
